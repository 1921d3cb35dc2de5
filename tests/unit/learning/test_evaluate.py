"""Evaluation metrics and the attested verdict."""

from __future__ import annotations

import numpy as np
import pytest

from learning.evaluate import VerdictRule, improved, metrics_from_outputs, verdict_metric
from learning.task import TaskSpec


def test_binary_metrics(cancer: TaskSpec) -> None:
    """AUC and accuracy of perfectly ranked logits are 1."""
    m = metrics_from_outputs(cancer, np.array([-2.0, -1.0, 1.0, 3.0]), np.array([0, 0, 1, 1]))
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0 and m["loss"] > 0


def test_one_class_split_has_no_auc(cancer: TaskSpec) -> None:
    """AUC is omitted where it is undefined."""
    m = metrics_from_outputs(cancer, np.array([0.5, 1.0]), np.array([1, 1]))
    assert "auc" not in m


def test_regression_metrics_are_in_label_units(diabetes: TaskSpec) -> None:
    """A perfect standardised prediction has RMSE 0 and R² 1."""
    y = np.array([100.0, 150.0, 200.0])
    out = (y - diabetes.label_center) / diabetes.label_scale
    m = metrics_from_outputs(diabetes, out, y)
    assert m["rmse"] == pytest.approx(0.0, abs=1e-9) and m["r2"] == pytest.approx(1.0)


def test_verdict_directions_and_noise_margin() -> None:
    """Lower loss or higher AUC is improved; a small loss within the noise margin still passes."""
    rule = VerdictRule("loss", noise_margin=0.01)
    assert improved({"loss": 0.5}, {"loss": 0.4}, rule)
    assert improved({"loss": 0.5}, {"loss": 0.505}, rule)
    assert not improved({"loss": 0.5}, {"loss": 0.6}, rule)
    auc = VerdictRule("auc", noise_margin=0.0)
    assert improved({"auc": 0.8, "loss": 1}, {"auc": 0.9, "loss": 2}, auc)
    assert not improved({"auc": 0.9, "loss": 1}, {"auc": 0.8, "loss": 0}, auc)


def test_verdict_falls_back_to_loss_and_refuses_nan() -> None:
    """Without the rule's metric the loss decides; a NaN is never an improvement."""
    auc = VerdictRule("auc", noise_margin=0.0)
    assert improved({"loss": 1.0}, {"loss": 0.5}, auc)
    assert verdict_metric({"loss": 1.0}, {"loss": 0.5}, auc) == "loss"
    assert verdict_metric({"loss": 1.0, "auc": 0.5}, {"loss": 0.5, "auc": 0.6}, auc) == "auc"
    assert not improved({"loss": 1.0}, {"loss": float("nan")}, VerdictRule())
    assert VerdictRule.from_dict(VerdictRule("r2", 0.02).to_dict()) == VerdictRule("r2", 0.02)


def test_multiclass_metrics_and_undefined_macro_auc() -> None:
    """Accuracy, macro-F1 and macro-AUC of logits; one class present has no macro-AUC."""
    from learning.metrics import multiclass_metrics

    out = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    result = multiclass_metrics(out, np.array([0.0, 1.0, 2.0, 1.0]), 3)
    assert result["accuracy"] == 0.75
    assert 0 < result["macro_f1"] < 1 and 0 < result["macro_auc"] <= 1
    assert result["loss"] > 0
    assert "macro_auc" not in multiclass_metrics(out, np.zeros(4), 3)


def _drift(rule: VerdictRule, *, track_best: bool, steps: int = 20) -> float:
    """A poisoner makes each candidate 0.004 worse (loss) than its parent; every certified
    candidate becomes the next parent. Return the loss of the last certified model."""
    from learning.evaluate import best_of

    current = {"loss": 0.30}
    best = None
    for _ in range(steps):
        if track_best:
            best = best_of(best, current, rule)
        candidate = {"loss": current["loss"] + 0.004}
        if improved(current, candidate, rule, best=best):
            current = candidate
    return current["loss"]


def test_slow_drift_is_bounded_by_the_best_certified_model() -> None:
    """Steps just under the noise margin: compared with the parent only, 20 steps drift by 0.08;
    compared with the best certified model as well, the drift stops within max_regression."""
    rule = VerdictRule("loss", noise_margin=0.005, max_regression=0.01)
    assert _drift(rule, track_best=False) == pytest.approx(0.30 + 20 * 0.004)
    assert _drift(rule, track_best=True) <= 0.30 + rule.max_regression + 1e-12


def test_best_of_keeps_the_better_model_in_the_rule_direction() -> None:
    """Lower loss wins for a loss rule, higher AUC for an AUC rule."""
    from learning.evaluate import best_of

    assert best_of({"loss": 0.3}, {"loss": 0.4}, VerdictRule("loss")) == {"loss": 0.3}
    auc = VerdictRule("auc")
    assert best_of({"auc": 0.7, "loss": 1}, {"auc": 0.8, "loss": 1}, auc)["auc"] == 0.8
