"""Byzantine devnet nodes: a poisoning site is rejected and debited; honest nodes keep committing.

Real `bcfl devnet up` runs (separate processes, real libp2p on 127.0.0.1), issue 4 Done-when 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from devnet_run import devnet_json

pytestmark = pytest.mark.slow


def devnet(tmp_path: Path, *args: str) -> dict:
    """Run `bcfl devnet up ... --json` to completion and return its JSON."""
    return devnet_json(tmp_path, *args)


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
    for node in result["nodes"]:  # what each daemon cost, from /proc (issue 9)
        assert 0 < node["cpu_seconds_per_height"] < node["cpu_seconds"], node["name"]
        assert 50e6 < node["peak_rss_bytes"] < 4e9, node["name"]


def test_garbage_node_is_rejected_by_reason_while_honest_nodes_commit(tmp_path: Path) -> None:
    """garbage:1 floods every topic; the others commit, count rejections by reason, stay linked."""
    from devnet.launcher import DevnetSpec, create, start, wait_for_blocks
    from devnet.processes import stop_all

    spec = DevnetSpec(
        directory=tmp_path / "dn", nodes=4, byzantine=("garbage", 1), update_window_s=3.0
    )
    nodes = create(spec)
    processes = start(spec.directory, nodes)
    try:
        wait_for_blocks(nodes, processes, 3, timeout_s=240)
        honest = nodes[:3]
        statuses = [n.get("/status") for n in honest]
        metrics = [_rejections(n.get_text("/metrics")) for n in honest]
    finally:
        stop_all(spec.directory, processes)
    assert all(s["peers"] >= 2 for s in statuses), statuses
    for counts in metrics:
        reasons = {reason for (_, reason), n in counts.items() if n > 0}
        assert len(reasons) >= 3, counts
    hashes = [n["height"] for n in statuses]
    assert min(hashes) >= 3


def _rejections(text: str) -> dict[tuple[str, str], float]:
    """bcfl_gossip_rejected_total{topic=..., reason=...} values from a /metrics page."""
    import re

    out = {}
    for line in text.splitlines():
        match = re.match(r"bcfl_gossip_rejected_total\{(.*)\} ([0-9.e+]+)$", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            out[(labels.get("topic", ""), labels.get("reason", ""))] = float(match.group(2))
    return out


def test_equivocating_validator_is_caught_and_slashed(tmp_path: Path) -> None:
    """equivocate:1 signs conflicting votes; blocks carry the evidence and its reputation falls."""
    result = devnet(tmp_path, "--nodes", "4", "--blocks", "4", "--byzantine", "equivocate:1")
    blocks = result["blocks"][:4]
    assert [b["height"] for b in blocks] == [1, 2, 3, 4]
    assert blocks[-1]["reputation"]["node3"] < 0 < blocks[-1]["reputation"]["node0"]
    hashes = [n["block_hashes"] for n in result["nodes"]]
    for height in ("1", "2", "3", "4"):
        assert len({h[height] for h in hashes}) == 1
