"""Content-addressed blob directory: `blobs/ab/cdef...` where the name is sha256(bytes).

A blob's id is the SHA-256 of exactly its bytes (the shared contract; models and updates are
safetensors bytes). The hash is checked on every write and every read: a blob that was
tampered with or torn on disk is reported as `BlobCorruptError` (and moved aside to
`blobs/corrupt/` so that it is fetched again from a peer), never handed to the trainer.

Large blobs move through the store in pieces: `IncomingBlob` receives a blob from the network
into `blobs/.incoming/`, hashing as it goes, and renames it into place only when the hash
matches; `verify` hashes a stored blob piece by piece; `read_piece` serves one piece.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import trio

from node.fsutil import atomic_write, fsync_dir

HASH_SIZE = 32
PIECE = 4 << 20  # bytes hashed or read at a time


class BlobCorruptError(Exception):
    """Stored or received bytes do not hash to the requested blob id."""


class BlobStore:
    """A directory of immutable blobs named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root_text = str(self.root)

    def path(self, blob_hash: bytes) -> Path:
        """Where the blob with this hash lives (whether or not it exists)."""
        if len(blob_hash) != HASH_SIZE:
            raise ValueError(f"a blob id is {HASH_SIZE} bytes, got {len(blob_hash)}")
        name = blob_hash.hex()
        return Path(f"{self._root_text}/{name[:2]}/{name[2:]}")  # one parse, not two joins

    def has(self, blob_hash: bytes) -> bool:
        return self.path(blob_hash).is_file()

    def size(self, blob_hash: bytes) -> int | None:
        """Size in bytes, or None when absent."""
        try:
            return self.path(blob_hash).stat().st_size
        except FileNotFoundError:
            return None

    def put(
        self, data: bytes, *, expected_hash: bytes | None = None, durable: bool = True
    ) -> bytes:
        """Store `data` and return its hash; with `expected_hash`, refuse bytes that differ.
        `durable=False`: no fsync (a blob peers hold too; `atomic_write`)."""
        blob_hash = hashlib.sha256(data).digest()
        if expected_hash is not None and blob_hash != expected_hash:
            raise BlobCorruptError(
                f"blob bytes hash to {blob_hash.hex()[:16]}, expected {expected_hash.hex()[:16]}"
            )
        target = self.path(blob_hash)
        if not target.is_file():  # immutable: an existing blob with this name is the same bytes
            atomic_write(target, data, mode=0o644, durable=durable)
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

    def verify(self, blob_hash: bytes) -> bool:
        """Whether the stored blob hashes to its name, read piece by piece (False when absent).

        A damaged blob is moved aside, as `get` does.
        """
        target = self.path(blob_hash)
        digest = hashlib.sha256()
        try:
            with open(target, "rb") as f:
                while piece := f.read(PIECE):
                    digest.update(piece)
        except (FileNotFoundError, IsADirectoryError):
            return False
        if digest.digest() != blob_hash:
            self._quarantine(target)
            return False
        return True

    def read_piece(self, blob_hash: bytes, offset: int, length: int) -> bytes:
        """Up to `length` bytes of a stored blob from `offset` (KeyError when absent)."""
        try:
            with open(self.path(blob_hash), "rb") as f:
                f.seek(offset)
                return f.read(length)
        except FileNotFoundError:
            raise KeyError(blob_hash.hex()) from None

    def incoming(self, expected_hash: bytes, size: int) -> IncomingBlob:
        """A temporary file to receive `size` bytes that must hash to `expected_hash`."""
        return IncomingBlob(self, expected_hash, size)

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


class IncomingBlob:
    """A blob being received piece by piece; `commit` stores it only if the hash matches.

    Used from a worker thread, one piece at a time; `discard` (or a failed `commit`) removes
    the temporary file, so a torn transfer never leaves a blob under its name.
    """

    def __init__(self, store: BlobStore, expected_hash: bytes, size: int) -> None:
        self.store = store
        self.expected_hash = expected_hash
        self.size = size
        self.received = 0
        self._digest = hashlib.sha256()
        directory = store.root / ".incoming"
        directory.mkdir(exist_ok=True)
        self.tmp = directory / f"{expected_hash.hex()[:16]}-{os.getpid()}-{os.urandom(4).hex()}"
        self._file = open(self.tmp, "xb")  # noqa: SIM115 - closed by commit or discard

    def write(self, piece: bytes) -> None:
        """Append a piece (never beyond the announced size)."""
        if self.received + len(piece) > self.size:
            raise BlobCorruptError("more bytes arrived than the blob's announced size")
        self._digest.update(piece)
        self._file.write(piece)
        self.received += len(piece)

    def commit(self) -> bytes:
        """Check size and hash, then move the file to its name durably; returns the hash."""
        try:
            if self.received != self.size:
                raise BlobCorruptError(f"blob ended after {self.received} of {self.size} bytes")
            if self._digest.digest() != self.expected_hash:
                raise BlobCorruptError(
                    f"received bytes do not hash to blob {self.expected_hash.hex()[:16]}"
                )
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target = self.store.path(self.expected_hash)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, target)
            fsync_dir(target.parent)
        except BaseException:
            self.discard()
            raise
        return self.expected_hash

    def discard(self) -> None:
        """Drop the temporary file (idempotent)."""
        self._file.close()
        self.tmp.unlink(missing_ok=True)


INLINE_VERIFY_BYTES = 256 * 1024  # a blob this small is hashed on the event loop (~0.1 ms)


async def verify_blob(blobs: BlobStore, blob_hash: bytes) -> bool:
    """`blobs.verify` off the event loop, except for a small blob: handing one of a few KiB to a
    worker thread costs more than hashing it (the 4n small update blobs of every height)."""
    size = blobs.size(blob_hash)
    if size is None:
        return False
    if size <= INLINE_VERIFY_BYTES:
        return blobs.verify(blob_hash)
    return await trio.to_thread.run_sync(blobs.verify, blob_hash)
