"""The genesis DP budget on a real 4-node devnet: spent, never overspent, and the chain goes on.

One short `bcfl devnet up --blocks 4 --dp-epsilon E --dp-rounds 2 --json` run (separate
processes, real libp2p on 127.0.0.1): the noise is calibrated so the budget lasts two
releases, so every site spends it in the first heights and the rest are carry-over blocks
(docs/THREAT-MODEL.md "Differential privacy").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from devnet_run import devnet_json

pytestmark = pytest.mark.slow

BLOCKS = 4
BUDGET = 0.8


def test_budgets_are_spent_within_the_budget_and_blocks_continue(tmp_path: Path) -> None:
    """Every member's ledger epsilon is positive and at most the budget, every site says its
    budget is spent, and blocks committed after that."""
    result = devnet_json(
        tmp_path,
        "--nodes",
        "4",
        "--blocks",
        str(BLOCKS),
        "--dp-epsilon",
        str(BUDGET),
        "--dp-rounds",
        "2",
        "--update-window",
        "5",
        timeout_s=120,
    )
    assert result["privacy"]["epsilon_budget"] == BUDGET
    blocks = result["blocks"][:BLOCKS]
    assert [b["height"] for b in blocks] == list(range(1, BLOCKS + 1))
    for name, row in result["ledger"].items():
        assert 0 < row["epsilon_spent"] <= BUDGET * (1 + 1e-9), name
    spent = [
        b for b in blocks if b["carry_over_reason"] == "every trainer's privacy budget is spent"
    ]
    assert spent and spent[-1]["height"] == BLOCKS, [b["carry_over_reason"] for b in blocks]
    for node in result["nodes"]:
        assert node["privacy"]["site"]["bcfl_dp_budget_exhausted"] == 1.0, node["name"]
        assert node["privacy"]["ledger"]["budget_exhausted"], node["name"]
    assert result["final_metric"] is not None


def test_secure_aggregation_commits_with_a_trainer_silent_after_publishing(tmp_path: Path) -> None:
    """`--secure-aggregation --byzantine secagg-silent:1`: the last site publishes its masked
    update every height and never reveals; its self mask is recovered from the other three
    holders' shares (t = 3 of 4), so every height commits a model block with all four updates,
    and `bcfl chain verify` recomputes each from the masked blobs and the transcript
    (docs/THREAT-MODEL.md "Privacy: secure aggregation")."""
    import json
    import subprocess
    import sys

    blocks = 3
    result = devnet_json(
        tmp_path,
        "--nodes",
        "4",
        "--blocks",
        str(blocks),
        "--secure-aggregation",
        "--byzantine",
        "secagg-silent:1",
        timeout_s=90,
    )
    assert result["secure_aggregation"] is True
    rows = result["blocks"][:blocks]
    assert [r["carry_over"] for r in rows] == [False] * blocks, [
        r["carry_over_reason"] for r in rows
    ]
    assert all(r["updates"] == 4 for r in rows), [r["updates"] for r in rows]
    silent_log = (tmp_path / "dn" / "node3" / "node.log").read_text()
    assert "withholding the reveal" in silent_log  # it did publish and then kept silent
    home = tmp_path / "dn" / "node0"
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "chain", "verify", "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    verified = json.loads(done.stdout)
    assert verified["ok"], verified["problem"]
    assert set(range(1, blocks + 1)) <= set(verified["aggregation"]["replayed"])
