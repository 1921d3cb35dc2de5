"""An observer without a seat in the genesis follows the chain block for block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_observer_follows_the_validators(tmp_path: Path) -> None:
    """`devnet up --observers 1`: the observer reports the validators' hash at every height."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli",
            "devnet",
            "up",
            "--dir",
            str(tmp_path / "dn"),
            "--blocks",
            "3",
            "--observers",
            "1",
            "--json",
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    observer = next(n for n in result["nodes"] if n["observer"])
    validators = [n for n in result["nodes"] if not n["observer"]]
    for height in ("1", "2", "3"):
        assert observer["block_hashes"][height] == validators[0]["block_hashes"][height]
    genesis = (tmp_path / "dn" / "node0" / "genesis.cbor").read_bytes()
    assert (tmp_path / "dn" / "observer0" / "genesis.cbor").read_bytes() == genesis
