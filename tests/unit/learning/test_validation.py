"""Update validation: every defect has its named rejection reason."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save

from learning.models import initial_weights
from learning.serialize import bytes_to_weights, weights_to_bytes
from learning.task import TaskSpec
from learning.validation import validate_update


@pytest.fixture
def model(cancer: TaskSpec) -> bytes:
    """The initial model blob of the cancer task."""
    return initial_weights(cancer, 0)


def _zeros(model: bytes) -> dict[str, np.ndarray]:
    return {k: np.zeros_like(v) for k, v in bytes_to_weights(model).items()}


def test_a_well_formed_update_passes(cancer: TaskSpec, model: bytes) -> None:
    """A finite delta of the right shapes within the bound is accepted."""
    assert validate_update(cancer, model, weights_to_bytes(_zeros(model)), max_norm=1.0) is None


def test_reasons(cancer: TaskSpec, model: bytes) -> None:
    """Garbage, wrong dtype, missing/extra tensors, shapes, NaN and norm get their reasons."""
    base = _zeros(model)
    missing = dict(base)
    missing.pop("net.0.bias")
    extra = base | {"evil": np.zeros(1, "f4")}
    shaped = base | {"net.0.weight": np.zeros((2, 30), "f4")}
    nan = base | {"net.0.bias": np.array([np.nan], "f4")}
    big = base | {"net.0.weight": np.full((1, 30), 10.0, "f4")}
    f64 = bytes(save({k: v.astype(np.float64) for k, v in base.items()}))
    cases = {
        b"not a blob": "undecodable",
        f64: "dtype-mismatch",
        weights_to_bytes(missing): "missing-tensor",
        weights_to_bytes(extra): "unexpected-tensor",
        weights_to_bytes(shaped): "shape-mismatch",
        weights_to_bytes(nan): "non-finite",
        weights_to_bytes(big): "norm-exceeded",
    }
    for blob, reason in cases.items():
        assert validate_update(cancer, model, blob, max_norm=5.0) == reason
