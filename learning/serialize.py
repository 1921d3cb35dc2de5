"""Model and update blobs: safetensors bytes, addressed by the SHA-256 of exactly those bytes.

safetensors is a JSON header plus raw little-endian tensors, so decoding a blob from a peer can
never execute code (unlike pickle, which this project never uses). Blobs are exchanged as
{tensor name: float32 array}; the names are the torch `state_dict` names of the task's model.

Large models are never parsed whole where it can be avoided: `TensorView` reads a validated
header and then slices of one tensor at a time from a `ByteSource` (bytes in memory, or a file
read piece by piece), so aggregation, screening and validation hold a chunk, not a model.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


def bytes_to_weights(blob: bytes | bytearray, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> Weights:
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


class ByteSource(Protocol):
    """Random access to a blob's bytes without holding them all (see `MemorySource`, `FileSource`)."""

    def size(self) -> int:
        """The blob's length in bytes."""
        ...

    def read(self, offset: int, length: int) -> bytes | memoryview:
        """Exactly `length` bytes from `offset` (which lie within the blob)."""
        ...


@dataclass(frozen=True, slots=True)
class MemorySource:
    """A blob already in memory; reads are zero-copy views.

    A `bytearray` is a blob that this process built (an aggregate, a training delta) and owns:
    it is read in place, not copied, and must not change while it is read.
    """

    data: bytes | bytearray

    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> memoryview:
        return memoryview(self.data)[offset : offset + length]


@dataclass(frozen=True, slots=True)
class FileSource:
    """A blob in a file, read piece by piece (the file must not change while it is read)."""

    path: Path

    def size(self) -> int:
        return self.path.stat().st_size

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise BlobError(f"{self.path.name} ended after {len(data)} of {length} bytes")
        return data


Blob = bytes | bytearray | ByteSource
READ_PIECE = 4 << 20  # bytes per read when a blob is hashed or streamed


def as_source(blob: Blob) -> ByteSource:
    """The blob as a `ByteSource` (bytes are wrapped, sources pass through)."""
    if isinstance(blob, bytes | bytearray):
        return MemorySource(blob)
    if isinstance(blob, memoryview):
        return MemorySource(bytes(blob))
    return blob


def source_hash(blob: Blob) -> bytes:
    """SHA-256 of a blob, read in pieces."""
    source = as_source(blob)
    digest = hashlib.sha256()
    size = source.size()
    for offset in range(0, size, READ_PIECE):
        digest.update(source.read(offset, min(READ_PIECE, size - offset)))
    return digest.digest()


class TensorView:
    """The float32 tensors of a safetensors blob, read a slice at a time.

    The header is validated as strictly as `bytes_to_weights` does: float32 only, shapes of
    non-negative integers, data offsets that tile the data section exactly.
    """

    def __init__(self, blob: Blob, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        self.source = as_source(blob)
        size = self.source.size()
        if size > max_bytes:
            raise BlobError(f"blob of {size} bytes exceeds the limit of {max_bytes}")
        if size < 8:
            raise BlobError("blob is shorter than a safetensors header")
        (header_len,) = struct.unpack("<Q", self.source.read(0, 8))
        if header_len > size - 8:
            raise BlobError("safetensors header length exceeds the blob")
        try:
            header = json.loads(bytes(self.source.read(8, header_len)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BlobError("safetensors header is not JSON") from exc
        if not isinstance(header, dict):
            raise BlobError("safetensors header is not a map")
        self.data_start = 8 + header_len
        self._tensors: dict[str, tuple[tuple[int, ...], int]] = {}
        spans = []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(info, dict) or info.get("dtype") != "F32":
                raise BlobError(f"tensor {name!r} is not float32", "dtype-mismatch")
            shape, offsets = info.get("shape"), info.get("data_offsets")
            if not (
                isinstance(shape, list)
                and all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(offsets, list)
                and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets)
            ):
                raise BlobError(f"tensor {name!r} has a malformed shape or offsets")
            count = math.prod(shape)
            if offsets[1] - offsets[0] != 4 * count or offsets[0] < 0:
                raise BlobError(f"tensor {name!r} offsets do not match its shape")
            self._tensors[name] = (tuple(shape), offsets[0])
            spans.append((offsets[0], offsets[1]))
        end = 0
        for start, stop in sorted(spans):
            if start != end:
                raise BlobError("safetensors data offsets leave a gap or overlap")
            end = stop
        if self.data_start + end != size:
            raise BlobError("safetensors data section does not match the blob length")

    @property
    def names(self) -> list[str]:
        """Tensor names in sorted order."""
        return sorted(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._tensors[name][0]

    def count(self, name: str) -> int:
        """Number of elements of a tensor."""
        return math.prod(self._tensors[name][0])

    def read(self, name: str, start: int, stop: int) -> npt.NDArray[np.float32]:
        """Elements [start, stop) of the flattened tensor, as a read-only float32 array."""
        offset = self.data_start + self._tensors[name][1] + 4 * start
        raw = self.source.read(offset, 4 * (stop - start))
        return np.frombuffer(raw, dtype="<f4")

    def spans(self, chunk: int) -> Iterator[tuple[str, int, int]]:
        """(name, start, stop) pieces of at most `chunk` elements, in name order."""
        for name in self.names:
            size = self.count(name)
            for start in range(0, size, chunk):
                yield name, start, min(start + chunk, size)


def safetensors_header(shapes: dict[str, tuple[int, ...]]) -> bytes:
    """The 8-byte length and JSON header that `weights_to_bytes` writes for these shapes.

    It lets an aggregate be written straight into one output buffer; a unit test pins it to
    the safetensors library's own output.
    """
    entries = []
    offset = 0
    for name in sorted(shapes):
        shape = shapes[name] or (1,)  # a 0-d array is saved as one element
        count = math.prod(shape)
        entries.append(
            f'{json.dumps(name)}:{{"dtype":"F32","shape":'
            f"[{','.join(str(d) for d in shape)}],"
            f'"data_offsets":[{offset},{offset + 4 * count}]}}'
        )
        offset += 4 * count
    text = ("{" + ",".join(entries) + "}").encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text
