"""Aggregation, screening and validation of file-backed updates hold chunks, not models."""

from __future__ import annotations

import hashlib
import importlib
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from learning.aggregate import AggregationRule, aggregate
from learning.screening import screen_outliers
from learning.serialize import FileSource, MemorySource, TensorView, weights_to_bytes
from learning.task import TaskSpec
from learning.validation import validate_update

SHAPES = {"conv.weight": (32, 32, 3, 3), "fc.weight": (300, 900), "fc.bias": (300,)}
N_UPDATES = 6
CHUNK = 1 << 12  # far below the model size, so that holding a whole update would show
CHUNK_BYTES = N_UPDATES * CHUNK * 8  # one float64 block of every update


def _blob(rng: np.random.Generator, scale: float) -> bytes:
    return weights_to_bytes(
        {k: rng.normal(0, scale, s).astype(np.float32) for k, s in SHAPES.items()}
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[bytes, list[tuple[bytes, FileSource, int]]]:
    rng = np.random.default_rng(3)
    base = _blob(rng, 1.0)
    updates = []
    for i in range(N_UPDATES):
        blob = _blob(rng, 0.01)
        path = tmp_path / f"u{i}"
        path.write_bytes(blob)
        updates.append((hashlib.sha256(blob).digest(), FileSource(path), 10 + i))
    return base, updates


def _peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("learning.aggregate", "learning.screening", "learning.validation"):
        monkeypatch.setattr(importlib.import_module(module), "CHUNK", CHUNK)
    monkeypatch.setattr(importlib.import_module("learning.aggregate"), "OUTPUT_CHUNK", CHUNK)


@pytest.mark.usefixtures("small_chunks")
def test_aggregating_file_updates_holds_about_twice_the_output(
    files: tuple[bytes, list[tuple[bytes, FileSource, int]]],
) -> None:
    """fedavg of six on-disk updates peaks near the one output buffer (returned as it is, with
    no copy into a `bytes`), not 6 models."""
    base, updates = files
    for rule in ("fedavg", "median"):
        aggregate(rule, base, updates)  # first call: what numpy imports lazily is not counted
        model, peak = _peak(lambda r=rule: aggregate(r, base, updates))  # type: ignore[misc]
        assert len(model) == len(base)
        # the output, two float64 blocks (the next is read while the last is alive) and slack
        assert peak < len(base) + 4 * CHUNK_BYTES < 2 * len(base), (rule, peak)


@pytest.mark.usefixtures("small_chunks")
def test_chunked_aggregation_gives_the_same_bytes_from_memory_and_files(
    files: tuple[bytes, list[tuple[bytes, FileSource, int]]],
) -> None:
    """Where the updates are read from does not change a bit of the aggregate."""
    base, updates = files
    in_memory = [(h, src.path.read_bytes(), n) for h, src, n in updates]
    assert aggregate("trimmed-mean", base, updates) == aggregate("trimmed-mean", base, in_memory)


@pytest.mark.usefixtures("small_chunks")
def test_screening_file_updates_holds_a_chunk(
    files: tuple[bytes, list[tuple[bytes, FileSource, int]]],
) -> None:
    """Screening six on-disk updates holds a few chunk blocks, less than one model."""
    _, updates = files
    verdicts, peak = _peak(lambda: screen_outliers([src for _, src, _ in updates]))
    assert verdicts == [None] * N_UPDATES
    assert peak < 4 * CHUNK_BYTES < updates[0][1].size(), peak


@pytest.mark.usefixtures("small_chunks")
def test_validating_a_file_update_holds_a_chunk(
    files: tuple[bytes, list[tuple[bytes, FileSource, int]]], cancer: TaskSpec
) -> None:
    """validate_update reads an on-disk update piece by piece."""
    base, updates = files
    reason, peak = _peak(lambda: validate_update(cancer, MemorySource(base), updates[0][1], 1e6))
    assert reason is None
    assert peak < 4 * CHUNK * 8 < len(base), peak


def test_tensor_view_refuses_offsets_that_do_not_tile_the_data() -> None:
    """A header whose offsets overlap is refused before any tensor is read."""
    good = weights_to_bytes({"a": np.ones(4, np.float32), "b": np.ones(4, np.float32)})
    bad = good.replace(b'"data_offsets":[16,32]', b'"data_offsets":[12,28]')
    assert bad != good
    with pytest.raises(ValueError, match="gap or overlap"):
        TensorView(bad)


@pytest.mark.parametrize(
    "rule",
    [
        AggregationRule("fedavg"),
        AggregationRule("median"),
        AggregationRule("trimmed-mean"),
        AggregationRule("multi-krum"),
        AggregationRule("fedavg", clip_norm=0.05),
    ],
)
def test_the_output_chunk_changes_no_bit(
    files: tuple[bytes, list[tuple[bytes, FileSource, int]]],
    rule: AggregationRule,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pass that writes the aggregate is coordinate-wise: a tiny output chunk (with a
    partial last one) gives the same bytes as the default."""
    base, updates = files
    expected = aggregate(rule, base, updates)
    monkeypatch.setattr(importlib.import_module("learning.aggregate"), "OUTPUT_CHUNK", 1000)
    assert aggregate(rule, base, updates) == expected
