"""Crash-safe file writes: temp file -> fsync -> rename -> fsync(directory).

A reader (or a restarted node) sees either the old content or the new one, never a torn
file: the rename is atomic on POSIX file systems, and syncing the directory makes the rename
itself durable before we return. Used for keys, the signer state, blobs and configs.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or create inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path | str, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write `data` to `path` atomically and durably, with permission bits `mode`.

    `durable=False` skips both fsyncs, for a file that can be had again (a peer's update blob):
    after a power cut it may be empty or short, never a mix, and a blob's hash check says so.

    The temp file is created with `mode` from the start (never world-readable for a key),
    lives in the same directory (same file system, so the rename is atomic) and is removed
    if anything fails before the rename.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed or widened what O_CREAT set
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(directory)


def atomic_write_text(path: Path | str, text: str, *, mode: int = 0o644) -> None:
    """`atomic_write` for UTF-8 text."""
    atomic_write(path, text.encode("utf-8"), mode=mode)
