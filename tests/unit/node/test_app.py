"""The site's learning app on awkward data: a one-class site trains and attests."""

from __future__ import annotations

from pathlib import Path

from consensus import codec
from consensus.crypto import BlsSigner
from consensus.genesis import make_genesis
from consensus.types import Hash, Height, UpdateReceipt, ValidatorIndex
from consensus.types import VerdictRule as GenesisVerdict
from learning import builtin_task, initial_weights
from node.app import LearningApp
from node.config import NodeConfig


def _app(tmp_path: Path, partition: str, site: int, verdict: str) -> tuple[LearningApp, bytes]:
    task = builtin_task("breast-cancer")
    model = initial_weights(task, 0)
    genesis = make_genesis(
        "app-test",
        [BlsSigner(bytes([7]) * 32)],
        task=task.to_dict(),
        initial_model_hash=codec.sha256(model),
        verdict_rule=GenesisVerdict(metric=verdict, noise_margin=0.0),
    )
    config = NodeConfig()
    config.data.partition, config.data.site_index, config.data.site_count = partition, site, 4
    return LearningApp(genesis, config, tmp_path, ValidatorIndex(0)), model


def test_one_class_site_trains_and_reports_the_loss_fallback(tmp_path: Path) -> None:
    """With AUC undefined on a one-class split the report names "loss" and holds the losses."""
    app, model = _app(tmp_path, "label-skew:1", 1, "auc")
    assert len(set(app.data.val.y.tolist())) == 1
    outcome = app.train(model, 1)
    assert outcome.update is not None and outcome.n_samples > 0
    candidate = app.build_candidate(model, _updates(outcome.update))
    assert candidate.model is not None
    evaluation = app.evaluate_candidate(
        model, Hash(bytes(32)), codec.sha256(candidate.model), _updates(outcome.update)
    )
    report = evaluation.report
    assert report.metric_name == "loss"
    assert (report.metric_before, report.metric_after) == (report.loss_before, report.loss_after)


def test_two_class_site_reports_the_genesis_metric(tmp_path: Path) -> None:
    """On a split holding both classes the report carries the rule's metric, AUC."""
    app, model = _app(tmp_path, "iid", 0, "auc")
    outcome = app.train(model, 1)
    assert outcome.update is not None
    candidate = app.build_candidate(model, _updates(outcome.update))
    assert candidate.model is not None
    evaluation = app.evaluate_candidate(
        model, Hash(bytes(32)), codec.sha256(candidate.model), _updates(outcome.update)
    )
    assert evaluation.report.metric_name == "auc"
    assert evaluation.report.metric_after == evaluation.metrics_after["auc"]


def _updates(update: bytes) -> list[tuple[UpdateReceipt, bytes | None]]:
    receipt = UpdateReceipt(
        ValidatorIndex(0), Height(1), Hash(bytes(32)), Hash(codec.sha256(update)), 10, 0.5, 0.0
    )
    return [(receipt, update)]


def test_a_task_other_than_the_genesis_pin_refuses_to_start(tmp_path: Path) -> None:
    """A site whose installed task code differs from the genesis pin gets one sentence."""
    import dataclasses

    import pytest

    from node.app import DataConfigError

    task = dataclasses.replace(builtin_task("breast-cancer"), code_hash="0" * 64)
    genesis = make_genesis("app-test", [BlsSigner(bytes([7]) * 32)], task=task.to_dict())
    with pytest.raises(DataConfigError, match=r"^the installed task learning.tasks.tabular"):
        LearningApp(genesis, NodeConfig(), tmp_path, ValidatorIndex(0))
