"""Atomic writes: all-or-nothing, permission bits, no temp debris."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from node import fsutil
from node.fsutil import atomic_write


def test_atomic_write_replaces_content_and_sets_mode(tmp_path: Path) -> None:
    """A second write replaces the first, with the requested mode and no temp files left."""
    target = tmp_path / "sub" / "f"
    atomic_write(target, b"one", mode=0o600)
    atomic_write(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["f"]


def test_failed_write_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the rename fails, the old file is intact and the temp file is removed."""
    target = tmp_path / "f"
    atomic_write(target, b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
