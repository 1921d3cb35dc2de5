"""Normalisation at genesis: per-site summaries combine exactly into the pooled statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.normalisation import FeatureSummary, combine, declare, summarise
from learning.plugin import builtin_task
from learning.task import TaskError


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6), st.integers(0, 99))
def test_combined_summaries_equal_the_pooled_statistics(sizes: list[int], seed: int) -> None:
    """However the rows are split among sites, the combined mean and variance are the pooled."""
    rng = np.random.default_rng(seed)
    sites = [rng.normal(rng.uniform(-50, 50), rng.uniform(0.1, 9), size=(n, 3)) for n in sizes]
    pooled = np.concatenate(sites)
    combined = combine([summarise(x) for x in sites])
    assert combined.count == len(pooled)
    assert np.allclose(combined.mean, pooled.mean(axis=0), rtol=1e-12, atol=1e-9)
    assert np.allclose(np.asarray(combined.m2) / combined.count, pooled.var(axis=0), rtol=1e-9)


def test_declare_sets_the_task_normalisation() -> None:
    """The declared centre and scale are the pooled mean and standard deviation."""
    spec = builtin_task("breast-cancer")
    rng = np.random.default_rng(0)
    sites = [rng.normal(5, 2, size=(30, spec.n_features)) for _ in range(3)]
    declared = declare(spec, [summarise(x) for x in sites])
    pooled = np.concatenate(sites)
    assert np.allclose(declared.feature_center, pooled.mean(axis=0))
    assert np.allclose(declared.feature_scale, pooled.std(axis=0))


def test_malformed_summaries_are_one_sentence() -> None:
    """A summary file with a negative M2 or a wrong width is refused, naming the file."""
    with pytest.raises(TaskError, match="^site3.json: m2"):
        FeatureSummary.from_dict({"count": 2, "mean": [1.0], "m2": [-1.0]}, "site3.json")
    with pytest.raises(TaskError, match="has 30"):
        declare(builtin_task("breast-cancer"), [FeatureSummary(2, (0.0,), (1.0,))])
