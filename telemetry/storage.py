"""Sizes of a node's store on disk, for `NodeMetrics.set_storage`.

A node's data directory holds the SQLite chain database (`*.sqlite` with its
`-wal` and `-shm` files: the WAL is part of what the database occupies) and the
content-addressed blob directory `blobs/` (two-level fan-out). Walking a few
thousand blob files costs milliseconds; the driver measures every few seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

DB_SUFFIXES = (".sqlite", ".sqlite-wal", ".sqlite-shm")


def measure_store(data_dir: Path, blobs_dir: Path | None = None) -> tuple[int, int, int]:
    """(database bytes, blob bytes, blob count) of a node's data directory."""
    db_bytes = 0
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if entry.name.endswith(DB_SUFFIXES) and entry.is_file(follow_symlinks=False):
                db_bytes += entry.stat(follow_symlinks=False).st_size
    blob_bytes = blob_count = 0
    for root, _, files in os.walk(blobs_dir or data_dir / "blobs"):
        for name in files:
            if name.endswith(".tmp") or name.startswith("."):
                continue  # an atomic write in progress
            try:
                blob_bytes += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # pruned meanwhile
                continue
            blob_count += 1
    return db_bytes, blob_bytes, blob_count
