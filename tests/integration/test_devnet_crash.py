"""A 4-node devnet survives SIGKILL of a validator mid-height; it catches up by sync and votes again.

Real `bcfl run` processes on 127.0.0.1, real libp2p, real SQLite (issue 4, Done-when 2).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devnet.launcher import DevnetNode, DevnetSpec, create, start
from devnet.processes import kill_node, start_node, stop_all

pytestmark = pytest.mark.slow


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll `condition` every 0.2 s until true; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def height(node: DevnetNode) -> int:
    status = node.get("/status")
    return int(status["height"]) if status else -1


def signers(hex_bitfield: str) -> set[int]:
    bits = bytes.fromhex(hex_bitfield)
    return {i for i in range(len(bits) * 8) if bits[i // 8] >> (i % 8) & 1}


def test_killed_validator_catches_up_and_votes_again(tmp_path: Path) -> None:
    """Three validators keep committing while one is SIGKILLed; restarted, it syncs and votes."""
    spec = DevnetSpec(directory=tmp_path / "devnet", nodes=4, update_window_s=3.0)
    nodes = create(spec)
    processes = start(spec.directory, nodes)
    victim_index = 3
    victim = nodes[victim_index]
    try:
        wait_until("5 blocks on every node", lambda: all(height(n) >= 5 for n in nodes), 120)
        kill_node(processes[victim_index])  # mid-height: the others are deciding height 6+
        killed_at = max(height(n) for n in nodes[:3])
        survivors = nodes[:3]
        wait_until(
            "three more blocks without the killed validator",
            lambda: all(height(n) >= killed_at + 3 for n in survivors),
            120,
        )
        assert height(victim) == -1, "the killed node still answers"

        processes[victim_index] = start_node(victim.name, victim.home)
        target = max(height(n) for n in survivors)
        wait_until("the restarted node to catch up", lambda: height(victim) >= target, 120)
        restarted_at = height(victim)

        def voted_after_restart() -> bool:
            tip = min(height(n) for n in nodes)
            for h in range(restarted_at + 1, tip + 1):
                block = nodes[0].get(f"/chain/{h}")
                if block is None:
                    continue
                if block["header"]["proposer"] == victim_index:
                    return True
                last_commit = block.get("last_commit")
                if last_commit and victim_index in signers(last_commit["signers"]):
                    return True
            return False

        wait_until(
            "a block proposed or precommitted by the restarted node", voted_after_restart, 120
        )

        tip = min(height(n) for n in nodes)
        chains = [{b["height"]: b["hash"] for b in n.get("/chain", timeout=10)} for n in nodes]
        for h in range(1, tip + 1):
            assert len({c[h] for c in chains}) == 1, f"nodes disagree at height {h}"
        for summary in nodes[0].get("/chain", timeout=10):
            assert summary["evidence"] == 0, f"equivocation evidence at height {summary['height']}"
    finally:
        stop_all(spec.directory, processes)

    for node in nodes:
        log = (node.home / "node.log").read_text(errors="replace")
        assert "SignRefused" not in log and "conflicting" not in log.lower(), node.name
        verify = subprocess.run(
            [sys.executable, "-m", "node.cli", "chain", "verify", "--home", str(node.home)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert verify.returncode == 0, f"{node.name}: {verify.stdout}{verify.stderr}"
