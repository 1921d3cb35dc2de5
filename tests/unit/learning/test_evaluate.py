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


def test_verdict_directions_and_tolerance() -> None:
    """Lower loss or higher AUC is improved; a small loss within tolerance still passes."""
    rule = VerdictRule("loss", tolerance=0.01)
    assert improved({"loss": 0.5}, {"loss": 0.4}, rule)
    assert improved({"loss": 0.5}, {"loss": 0.505}, rule)
    assert not improved({"loss": 0.5}, {"loss": 0.6}, rule)
    auc = VerdictRule("auc", tolerance=0.0)
    assert improved({"auc": 0.8, "loss": 1}, {"auc": 0.9, "loss": 2}, auc)
    assert not improved({"auc": 0.9, "loss": 1}, {"auc": 0.8, "loss": 0}, auc)


def test_verdict_falls_back_to_loss_and_refuses_nan() -> None:
    """Without the rule's metric the loss decides; a NaN is never an improvement."""
    auc = VerdictRule("auc", tolerance=0.0)
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
