"""The two-slot signer state file: newest intact record wins, a torn write loses nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.signer_state_file import MAX_PAYLOAD, SLOT_SIZE, SignerStateFile


def test_saves_replace_each_other_and_survive_reopening(tmp_path: Path) -> None:
    """The last save is what a new process reads; the file is mode 0600."""
    path = tmp_path / "signer_state"
    first = SignerStateFile(path)
    assert first.load() is None
    for value in (b"h1 r0 prevote", b"h1 r0 precommit", b"h2 r0 prevote"):
        first.save(value)
    first.close()
    assert SignerStateFile(path).load() == b"h2 r0 prevote"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_torn_newest_slot_falls_back_to_the_previous_state(tmp_path: Path) -> None:
    """A crash in the middle of writing record n leaves record n-1 readable."""
    path = tmp_path / "signer_state"
    state = SignerStateFile(path)
    state.save(b"older")  # sequence 1 -> slot 1
    state.save(b"newer")  # sequence 2 -> slot 0
    state.close()
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, b"\xff" * 2, 50)  # damage the payload of slot 0 (header is 48 bytes)
    os.close(fd)
    assert SignerStateFile(path).load() == b"older"


def test_sequence_continues_after_reopening(tmp_path: Path) -> None:
    """A reopened file writes after the newest record, never over it."""
    path = tmp_path / "signer_state"
    state = SignerStateFile(path)
    state.save(b"a")
    state.save(b"b")
    state.close()
    again = SignerStateFile(path)
    again.save(b"c")
    again.close()
    fd = os.open(path, os.O_RDONLY)
    slots = os.pread(fd, 2 * SLOT_SIZE, 0)
    os.close(fd)
    assert b"c" in slots[SLOT_SIZE:] and b"b" in slots[:SLOT_SIZE]
    assert SignerStateFile(path).load() == b"c"


def test_oversized_state_is_refused(tmp_path: Path) -> None:
    """A state larger than a slot is our bug and raises instead of truncating."""
    with pytest.raises(ValueError):
        SignerStateFile(tmp_path / "s").save(bytes(MAX_PAYLOAD + 1))
