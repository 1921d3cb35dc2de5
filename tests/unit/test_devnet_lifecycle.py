"""devnet/lifecycle.py `report`: activation height, joiner signatures, block intervals."""

from __future__ import annotations

from pathlib import Path

from devnet.launcher import DevnetNode, DevnetSpec
from devnet.lifecycle import Lifecycle


def _nodes(n: int, joiner: bool) -> list[DevnetNode]:
    nodes = [DevnetNode(f"node{i}", Path(f"/x/node{i}"), 1, 2) for i in range(n)]
    if joiner:
        nodes.append(DevnetNode(f"node{n}", Path(f"/x/node{n}"), 1, 2, joiner=True))
    return nodes


def _block(height: int, validators: list[str], signers: list[str], t: float) -> dict:  # type: ignore[type-arg]
    return {"height": height, "validators": validators, "commit_signers": signers, "time_ms": t}


def test_leave_report_names_the_site_even_after_it_was_dropped() -> None:
    nodes = _nodes(5, joiner=False)
    lifecycle = Lifecycle(DevnetSpec(Path("/x"), nodes=5, leave_at=2), nodes, [])
    del nodes[4]  # the lifecycle stops and drops node4
    five = [f"node{i}" for i in range(5)]
    blocks = [_block(h, five, five, 1000 * h) for h in range(1, 5)]
    blocks += [_block(h, five[:4], five[:4], 4000 + 3000 * (h - 4)) for h in range(5, 8)]
    report = lifecycle.report({"blocks": blocks})
    assert report["site"] == "node4" and report["activation_height"] == 5
    assert report["median_interval_before_s"] == 1.0
    assert report["median_interval_after_s"] == 3.0 and report["interval_ratio"] == 3.0


def test_join_report_lists_the_heights_the_joiner_signed() -> None:
    nodes = _nodes(4, joiner=True)
    lifecycle = Lifecycle(DevnetSpec(Path("/x"), nodes=4, join_at=2), nodes, [])
    four, five = [f"node{i}" for i in range(4)], [f"node{i}" for i in range(5)]
    blocks = [_block(1, four, four[:3], 1), _block(2, five, four, 2), _block(3, five, five, 3)]
    report = lifecycle.report({"blocks": blocks})
    assert report["activation_height"] == 2 and report["joiner_signed_heights"] == [3]
