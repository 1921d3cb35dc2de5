"""`bcfl simulate learning --secure-aggregation`: the masked federation matches plain fedavg."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from learning.simulate import SimConfig, run_simulation
from node.cli import main

SMALL = SimConfig(nodes=4, rounds=2, local_epochs=1, seed=0)


def test_secure_aggregation_ends_within_0_01_of_plain_fedavg() -> None:
    """Same sites, same seeds: the final metric differs by less than 0.01 (quantisation only)."""
    plain = run_simulation(SMALL)
    masked = run_simulation(replace(SMALL, secure_aggregation=True, secagg_neighbours=2))
    metric = plain["metric"]
    assert abs(plain["final"][metric] - masked["final"][metric]) < 0.01
    assert masked["model_hash"] != plain["model_hash"]  # it did run another aggregation


def test_the_cli_reports_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    """--json carries secure_aggregation.final, plain_final and difference."""
    code = main(
        [
            "simulate",
            "learning",
            "--secure-aggregation",
            "--nodes",
            "3",
            "--rounds",
            "1",
            "--local-epochs",
            "1",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)["secure_aggregation"]
    assert report["difference"] == round(abs(report["final"] - report["plain_final"]), 6)
    assert report["difference"] < 0.01


def test_the_cli_refuses_a_rule_that_needs_each_update(capsys: pytest.CaptureFixture[str]) -> None:
    """--secure-aggregation with --rule median is one sentence, not a traceback."""
    code = main(["simulate", "learning", "--secure-aggregation", "--rule", "median"])
    assert code != 0
    assert "use --rule fedavg" in capsys.readouterr().err


def test_a_trainer_silent_after_masking_changes_nothing() -> None:
    """Recovered from its neighbours' shares, the round's sum is exact: the same model bytes."""
    base = replace(SMALL, nodes=5, rounds=1, secure_aggregation=True)
    clean = run_simulation(base)
    dropped = run_simulation(replace(base, secagg_dropouts=1))
    assert dropped["rounds"][0]["secagg_recovered"] == 1
    assert dropped["model_hash"] == clean["model_hash"]


def test_too_many_silent_trainers_carry_the_round_over() -> None:
    """Three of five silent: fewer than t shares, the model is kept with reason secagg-threshold."""
    base = replace(SMALL, nodes=5, rounds=1, secure_aggregation=True, secagg_dropouts=3)
    result = run_simulation(base)
    assert result["rounds"][0]["reason"] == "secagg-threshold"
    assert result["accepted_rounds"] == 0
