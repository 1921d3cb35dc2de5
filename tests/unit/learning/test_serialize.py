"""Blobs: safetensors round trip, hash over exact bytes, garbage rejected with a reason."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from safetensors.numpy import save

from learning.serialize import BlobError, blob_hash, bytes_to_weights, weights_to_bytes


def test_round_trip_preserves_names_shapes_and_values() -> None:
    """A blob decodes to the arrays it was made from."""
    weights = {"net.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, "f4")}
    back = bytes_to_weights(weights_to_bytes(weights))
    assert sorted(back) == ["b", "net.0.weight"]
    assert np.array_equal(back["net.0.weight"], weights["net.0.weight"])


def test_serialisation_is_independent_of_dict_order() -> None:
    """Equal weights give equal bytes whatever the insertion order."""
    a = {"x": np.zeros(3, "f4"), "y": np.ones(2, "f4")}
    b = {"y": np.ones(2, "f4"), "x": np.zeros(3, "f4")}
    assert weights_to_bytes(a) == weights_to_bytes(b)


def test_blob_hash_is_sha256_of_the_bytes() -> None:
    """The blob id is SHA-256 over exactly the blob bytes."""
    blob = weights_to_bytes({"x": np.zeros(3, "f4")})
    assert blob_hash(blob) == hashlib.sha256(blob).digest()
    assert len(blob_hash(blob)) == 32


@pytest.mark.parametrize(
    "blob", [b"", b"\x00" * 7, b"\xff" * 64, b"\x02\x00\x00\x00\x00\x00\x00\x00{x"]
)
def test_garbage_is_undecodable(blob: bytes) -> None:
    """Random bytes are rejected as undecodable, never crash."""
    with pytest.raises(BlobError) as info:
        bytes_to_weights(blob)
    assert info.value.reason == "undecodable"


def test_other_dtypes_are_rejected() -> None:
    """A float64 tensor is a dtype mismatch."""
    blob = bytes(save({"x": np.zeros(3, dtype=np.float64)}))
    with pytest.raises(BlobError) as info:
        bytes_to_weights(blob)
    assert info.value.reason == "dtype-mismatch"


def test_oversized_blob_is_refused_before_parsing() -> None:
    """The size limit applies before any parsing."""
    blob = weights_to_bytes({"x": np.zeros(100, "f4")})
    with pytest.raises(BlobError, match="exceeds"):
        bytes_to_weights(blob, max_bytes=64)
