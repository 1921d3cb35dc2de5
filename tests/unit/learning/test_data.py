"""Partitioners: deterministic, disjoint, skewed as asked, with a held-out global test split."""

from __future__ import annotations

import numpy as np
import pytest

from learning.data import MIN_SITE_SAMPLES, DataError, parse_partition, partition_indices
from learning.plugin import all_sites, global_test, pooled_train, site_data
from learning.task import TaskSpec


def _rows(split_x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in split_x}


def test_sites_and_test_split_are_disjoint_and_cover_the_data(cancer: TaskSpec) -> None:
    """Every sample is in exactly one site split or the global test split."""
    sites = all_sites(cancer, 8, "dirichlet:0.5", seed=3)
    test = global_test(cancer, 3)
    seen: set[bytes] = set()
    total = 0
    for site in sites:
        for part in (site.train, site.val):
            total += len(part)
            seen |= _rows(part.x)
    assert total + len(test) == 569
    assert not seen & _rows(test.x)
    assert total == len(pooled_train(cancer, 3))


def test_partition_is_deterministic(cancer: TaskSpec) -> None:
    """The same seed gives the same site data; another seed does not."""
    a = site_data(cancer, 2, 8, "dirichlet:0.5", seed=1)
    b = site_data(cancer, 2, 8, "dirichlet:0.5", seed=1)
    c = site_data(cancer, 2, 8, "dirichlet:0.5", seed=2)
    assert np.array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)


def test_dirichlet_skews_labels_more_than_iid() -> None:
    """Small alpha gives sites far more different class mixes than IID."""
    strata = np.repeat([0, 1], 500)

    def spread(spec: str) -> float:
        parts = partition_indices(strata, 8, spec, seed=0)
        return float(np.std([strata[p].mean() for p in parts]))

    assert spread("dirichlet:0.1") > 3 * spread("iid")


def test_quantity_skew_varies_site_sizes() -> None:
    """Quantity skew gives unequal sizes, each at least the minimum."""
    parts = partition_indices(np.zeros(1000, dtype=np.int64), 8, "quantity:0.5", seed=0)
    sizes = [len(p) for p in parts]
    assert min(sizes) >= MIN_SITE_SAMPLES
    assert max(sizes) > 2 * min(sizes)


def test_label_skew_one_gives_one_class_sites(cancer: TaskSpec) -> None:
    """label-skew:1 gives every site a single class, both classes across the consortium."""
    sites = all_sites(cancer, 4, "label-skew:1", seed=0)
    classes = [set(np.unique(np.concatenate([s.train.y, s.val.y])).tolist()) for s in sites]
    assert all(len(c) == 1 for c in classes)
    assert set().union(*classes) == {0.0, 1.0}


def test_label_skew_k_spreads_k_classes_per_site() -> None:
    """label-skew:2 over ten classes gives each site exactly two, and every sample a site."""
    strata = np.repeat(np.arange(10), 40)
    parts = partition_indices(strata, 5, "label-skew:2", seed=0)
    assert [len(np.unique(strata[p])) for p in parts] == [2] * 5
    assert sorted(np.concatenate(parts).tolist()) == list(range(400))


def test_each_site_keeps_a_validation_split(diabetes: TaskSpec) -> None:
    """Every site has a non-empty private validation split."""
    for site in all_sites(diabetes, 8, "dirichlet:0.5", seed=0):
        assert len(site.val) >= 1 and len(site.train) > len(site.val)


@pytest.mark.parametrize(
    "spec",
    ["dirichlet", "dirichlet:-1", "dirichlet:x", "random", "iid:2", "label-skew:0", "label-skew:x"],
)
def test_bad_partition_spec_is_a_data_error(spec: str) -> None:
    """A malformed partition spec gets one clear sentence."""
    with pytest.raises(DataError):
        parse_partition(spec)


def test_too_many_sites_is_refused(cancer: TaskSpec) -> None:
    """Sites that would hold fewer than the minimum samples are refused."""
    with pytest.raises(DataError, match="cannot give"):
        all_sites(cancer, 100, "iid", seed=0)
