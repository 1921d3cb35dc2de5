"""The federation simulator and `bcfl simulate learning`: JSON keys, determinism, the gate."""

from __future__ import annotations

import json

import pytest

from learning.simulate import SimConfig, run_simulation
from node.cli import main

SMALL = SimConfig(nodes=4, rounds=3, local_epochs=1, partition="dirichlet:1.0", seed=0)


def test_result_has_the_documented_keys() -> None:
    """rounds, final, centralized, local_only and rounds_to_centralized are present."""
    result = run_simulation(SMALL)
    assert len(result["rounds"]) == 3
    first = result["rounds"][0]
    assert {"round", "accepted", "attestations", "test"} <= set(first)
    for key in ("final", "centralized", "local_only"):
        assert {"auc", "accuracy", "loss"} <= set(result[key])
    assert "rounds_to_centralized" in result


def test_same_seed_same_result() -> None:
    """Two runs with one seed give identical results."""
    assert run_simulation(SMALL) == run_simulation(SMALL)


def test_gate_rejects_a_poisoned_fedavg_round() -> None:
    """With sign-flipping attackers FedAvg candidates are rejected unless the gate is off."""
    config = SimConfig(
        nodes=4, rounds=2, local_epochs=1, attack="signflip", attackers=2, rule="fedavg", seed=0
    )
    gated = run_simulation(config)
    assert not any(r["accepted"] for r in gated["rounds"])
    assert gated["final"] == gated["rounds"][0]["test"]
    from dataclasses import replace

    open_ = run_simulation(replace(config, gate=False))
    assert open_["final"]["auc"] != gated["final"]["auc"]


def test_dp_run_reports_epsilon_per_round_within_budget() -> None:
    """With a DP budget each round reports epsilon spent, never above the budget."""
    result = run_simulation(SimConfig(nodes=4, rounds=3, local_epochs=1, dp_epsilon=3.0))
    spent = [r["epsilon_spent"] for r in result["rounds"]]
    assert spent == sorted(spent) and 0 < spent[-1] <= 3.0
    assert result["dp"]["releases"] == 3


def test_dp_site_stops_when_the_budget_is_spent() -> None:
    """A small noise multiplier exhausts the budget and rounds get no updates."""
    result = run_simulation(
        SimConfig(nodes=4, rounds=4, local_epochs=1, dp_epsilon=3.0, dp_noise=2.0)
    )
    assert result["dp"]["releases"] < 4
    assert result["rounds"][-1]["contributors"] == 0


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`bcfl simulate learning --json` prints one JSON object."""
    code = main(
        ["simulate", "learning", "--nodes", "3", "--rounds", "2", "--local-epochs", "1", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["rounds"]) == 2 and "centralized" in result


def test_cli_table_and_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """The table has one line per round; a bad partition is a one-line user error."""
    assert main(["simulate", "learning", "--nodes", "3", "--rounds", "2", "--no-gate"]) == 0
    out = capsys.readouterr().out
    assert out.count("round ") == 2 and "centralized" in out
    assert main(["simulate", "learning", "--partition", "dirichlet:-1"]) == 2
    assert "positive alpha" in capsys.readouterr().err
    assert main(["simulate", "learning", "--attack", "signflip:9"]) == 2
