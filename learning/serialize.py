"""Model and update blobs: safetensors bytes, addressed by the SHA-256 of exactly those bytes.

safetensors is a JSON header plus raw little-endian tensors, so decoding a blob from a peer can
never execute code (unlike pickle, which this project never uses). Blobs are exchanged as
{tensor name: float32 array}; the names are the torch `state_dict` names of the task's model.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

Weights = dict[str, npt.NDArray[np.float32]]

# A blob larger than this is refused before parsing (a 10M-parameter model is 40 MB).
DEFAULT_MAX_BLOB_BYTES = 256 * 1024 * 1024


class BlobError(ValueError):
    """A blob is not a well-formed float32 safetensors file; the message says why.

    `reason` is a short stable name for metrics and rejections: "undecodable" or "dtype-mismatch".
    """

    def __init__(self, message: str, reason: str = "undecodable") -> None:
        super().__init__(message)
        self.reason = reason


def blob_hash(blob: bytes) -> bytes:
    """Return the blob id: SHA-256 over the exact bytes (32 raw bytes)."""
    return hashlib.sha256(blob).digest()


def weights_to_bytes(weights: Weights) -> bytes:
    """Serialise named float32 arrays to safetensors bytes (deterministic for equal input)."""
    tensors = {}
    for name in sorted(weights):
        array = np.ascontiguousarray(weights[name])
        if array.dtype != np.float32:
            raise TypeError(f"tensor {name!r} is {array.dtype}, blobs hold float32 only")
        tensors[name] = array
    return bytes(_st_save(tensors))


def bytes_to_weights(blob: bytes, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> Weights:
    """Parse a safetensors blob into named float32 arrays; raise BlobError on anything else."""
    if len(blob) > max_bytes:
        raise BlobError(f"blob of {len(blob)} bytes exceeds the limit of {max_bytes}")
    if len(blob) < 8:
        raise BlobError("blob is shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > len(blob) - 8:
        raise BlobError("safetensors header length exceeds the blob")
    try:
        header = json.loads(blob[8 : 8 + header_len])
    except (ValueError, UnicodeDecodeError) as exc:
        raise BlobError("safetensors header is not JSON") from exc
    if not isinstance(header, dict):
        raise BlobError("safetensors header is not a map")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or info.get("dtype") != "F32":
            raise BlobError(f"tensor {name!r} is not float32", "dtype-mismatch")
    try:
        loaded = _st_load(bytes(blob))
    except Exception as exc:  # safetensors raises its own error types for malformed input
        raise BlobError(f"malformed safetensors blob: {exc}") from exc
    return {name: np.array(arr, dtype=np.float32) for name, arr in loaded.items()}
