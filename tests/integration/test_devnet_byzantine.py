"""Byzantine devnet nodes: a poisoning site is rejected and debited; honest nodes keep committing.

Real `bcfl devnet up` runs (separate processes, real libp2p on 127.0.0.1), issue 4 Done-when 3.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def devnet(tmp_path: Path, *args: str) -> dict:
    """Run `bcfl devnet up ... --json` to completion and return its JSON."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli",
            "devnet",
            "up",
            "--dir",
            str(tmp_path / "dn"),
            "--json",
            "--timeout",
            "240",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_poisoned_updates_are_rejected_and_visible_in_the_ledger(tmp_path: Path) -> None:
    """With poison:1 the chain commits, node3's updates are rejected, its reputation falls."""
    result = devnet(tmp_path, "--nodes", "4", "--blocks", "4", "--byzantine", "poison:1")
    blocks = result["blocks"][:4]
    assert [b["height"] for b in blocks] == [1, 2, 3, 4]
    assert sum(b["rejected"] for b in blocks) >= 3
    assert blocks[-1]["reputation"]["node3"] < 0 < blocks[-1]["reputation"]["node0"]
    assert result["final_metric"] > result["genesis_metric"]
    hashes = [n["block_hashes"] for n in result["nodes"]]
    for height in ("1", "2", "3", "4"):
        assert len({h[height] for h in hashes}) == 1
