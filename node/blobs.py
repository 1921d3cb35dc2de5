"""Content-addressed blob directory: `blobs/ab/cdef...` where the name is sha256(bytes).

A blob's id is the SHA-256 of exactly its bytes (the shared contract; models and updates are
safetensors bytes). The hash is checked on every write and every read: a blob that was
tampered with or torn on disk is reported as `BlobCorruptError` (and moved aside to
`blobs/corrupt/` so that it is fetched again from a peer), never handed to the trainer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from node.fsutil import atomic_write

HASH_SIZE = 32


class BlobCorruptError(Exception):
    """Stored or received bytes do not hash to the requested blob id."""


class BlobStore:
    """A directory of immutable blobs named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, blob_hash: bytes) -> Path:
        """Where the blob with this hash lives (whether or not it exists)."""
        if len(blob_hash) != HASH_SIZE:
            raise ValueError(f"a blob id is {HASH_SIZE} bytes, got {len(blob_hash)}")
        name = blob_hash.hex()
        return self.root / name[:2] / name[2:]

    def has(self, blob_hash: bytes) -> bool:
        return self.path(blob_hash).is_file()

    def size(self, blob_hash: bytes) -> int | None:
        """Size in bytes, or None when absent."""
        try:
            return self.path(blob_hash).stat().st_size
        except FileNotFoundError:
            return None

    def put(self, data: bytes, *, expected_hash: bytes | None = None) -> bytes:
        """Store `data` and return its hash; with `expected_hash`, refuse bytes that differ."""
        blob_hash = hashlib.sha256(data).digest()
        if expected_hash is not None and blob_hash != expected_hash:
            raise BlobCorruptError(
                f"blob bytes hash to {blob_hash.hex()[:16]}, expected {expected_hash.hex()[:16]}"
            )
        target = self.path(blob_hash)
        if not target.is_file():  # immutable: an existing blob with this name is the same bytes
            atomic_write(target, data, mode=0o644)
        return blob_hash

    def get(self, blob_hash: bytes) -> bytes:
        """Read and verify a blob; raises KeyError when absent, BlobCorruptError when damaged."""
        target = self.path(blob_hash)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise KeyError(blob_hash.hex()) from None
        if hashlib.sha256(data).digest() != blob_hash:
            self._quarantine(target)
            raise BlobCorruptError(f"stored blob {blob_hash.hex()[:16]} failed its hash check")
        return data

    def delete(self, blob_hash: bytes) -> bool:
        """Remove a blob; returns whether it existed."""
        try:
            self.path(blob_hash).unlink()
        except FileNotFoundError:
            return False
        return True

    def __iter__(self) -> Iterator[bytes]:
        """All stored blob ids (in no particular order)."""
        for sub in self.root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for entry in sub.iterdir():
                if len(entry.name) == 62 and not entry.name.startswith("."):
                    try:
                        yield bytes.fromhex(sub.name + entry.name)
                    except ValueError:
                        continue

    def mtime(self, blob_hash: bytes) -> float | None:
        try:
            return self.path(blob_hash).stat().st_mtime
        except FileNotFoundError:
            return None

    def _quarantine(self, target: Path) -> None:
        corrupt = self.root / "corrupt"
        corrupt.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, corrupt / f"{target.parent.name}{target.name}")
