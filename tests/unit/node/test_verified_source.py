"""The learning worker's view of a stored blob: verified, small ones read once into memory."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from learning.serialize import FileSource, MemorySource
from node.blobs import INLINE_VERIFY_BYTES, BlobStore
from node.services.learning_worker import verified_source


def _read_all(source: object) -> bytes:
    assert isinstance(source, MemorySource | FileSource)
    return bytes(source.read(0, source.size()))


def test_a_small_blob_is_read_once_and_no_longer_needs_its_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = os.urandom(4096)
    blob_hash = blobs.put(data)
    source = trio.run(verified_source, blobs, blob_hash)
    assert isinstance(source, MemorySource)
    blobs.path(blob_hash).unlink()  # every later read is served from memory, not from the file
    assert _read_all(source) == data


def test_a_large_blob_stays_a_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = os.urandom(INLINE_VERIFY_BYTES + 1)
    blob_hash = blobs.put(data)
    source = trio.run(verified_source, blobs, blob_hash)
    assert isinstance(source, FileSource)
    assert _read_all(source) == data


def test_a_damaged_or_absent_blob_is_none_and_a_damaged_one_is_moved_aside(
    tmp_path: Path,
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    for size in (4096, INLINE_VERIFY_BYTES + 1):
        data = os.urandom(size)
        blob_hash = blobs.put(data)
        path = blobs.path(blob_hash)
        path.write_bytes(b"\x00" + data[1:])  # one flipped byte
        assert trio.run(verified_source, blobs, blob_hash) is None
        assert not path.exists()
    assert trio.run(verified_source, blobs, bytes(32)) is None
