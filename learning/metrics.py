"""Metrics of model outputs against true labels, one function per task kind.

- binary (one logit per sample): `loss` (binary cross-entropy), `accuracy`, and `auc` only when
  both classes are present;
- multiclass (one logit per class): `loss` (cross-entropy), `accuracy`, `macro_f1` (over the
  classes present in the labels or the predictions, as scikit-learn does) and `macro_auc`
  (one-vs-rest, averaged over the classes present; only when at least two are present);
- regression (one standardised output): `loss` (mean squared error of the standardised target),
  `rmse` and `mae` in the label's own units, and `r2` when the labels vary.

A metric missing from the result is undefined on that split; the verdict then uses the loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learning.task import TaskSpec

LOWER_IS_BETTER = {
    "loss": True,
    "rmse": True,
    "mae": True,
    "auc": False,
    "accuracy": False,
    "r2": False,
    "macro_f1": False,
    "macro_auc": False,
}


def roc_auc(positive: np.ndarray[Any, Any], score: np.ndarray[Any, Any]) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative, ties counting half.

    The Mann-Whitney statistic from mid-ranks, which equals scikit-learn's `roc_auc_score`
    (checked in tests/unit/learning/test_metrics.py) without importing scikit-learn in a daemon.
    Both classes must be present.
    """
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the AUC needs both classes")
    order = np.argsort(score, kind="mergesort")
    ordered = score[order]
    # mid-rank of each run of equal scores (ranks from 1)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    mid = (starts + ends + 1) / 2.0
    ranks = np.empty(len(score), dtype=np.float64)
    ranks[order] = np.repeat(mid, ends - starts)
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def macro_f1(labels: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> float:
    """F1 averaged over the classes present in the labels or the predictions (0 where undefined)."""
    classes = np.union1d(labels, pred)
    scores = []
    for c in classes:
        tp = float(np.sum((pred == c) & (labels == c)))
        predicted = float(np.sum(pred == c))
        actual = float(np.sum(labels == c))
        scores.append(2.0 * tp / (predicted + actual) if predicted + actual > 0 else 0.0)
    return float(np.mean(scores))


def binary_metrics(out: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> dict[str, float]:
    """Loss, accuracy and (with both classes present) AUC of logits `out`."""
    # log(1 + e^z) - y z, computed stably
    loss = float(np.mean(np.logaddexp(0.0, out) - y * out))
    result = {"loss": loss, "accuracy": float(np.mean((out > 0) == (y > 0.5)))}
    if 0 < y.sum() < len(y):
        result["auc"] = roc_auc(y > 0.5, out)
    return result


def multiclass_metrics(
    out: np.ndarray[Any, Any], y: np.ndarray[Any, Any], n_classes: int
) -> dict[str, float]:
    """Cross-entropy, accuracy, macro-F1 and (two or more classes present) macro-AUC."""
    labels = y.astype(np.int64)
    log_prob = out - np.logaddexp.reduce(out, axis=1, keepdims=True)
    pred = np.argmax(out, axis=1)
    result = {
        "loss": float(-np.mean(log_prob[np.arange(len(labels)), labels])),
        "accuracy": float(np.mean(pred == labels)),
        "macro_f1": macro_f1(labels, pred),
    }
    present = [c for c in range(n_classes) if 0 < np.sum(labels == c) < len(labels)]
    if len(present) >= 2:
        prob = np.exp(log_prob)
        result["macro_auc"] = float(np.mean([roc_auc(labels == c, prob[:, c]) for c in present]))
    return result


def regression_metrics(
    task: TaskSpec, out: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> dict[str, float]:
    """Standardised MSE, and RMSE, MAE and R² in the label's units."""
    target = (y - task.label_center) / task.label_scale
    pred = out * task.label_scale + task.label_center
    result = {
        "loss": float(np.mean((out - target) ** 2)),
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "mae": float(np.mean(np.abs(pred - y))),
    }
    total = float(np.sum((y - y.mean()) ** 2))
    if total > 0:
        result["r2"] = 1.0 - float(np.sum((pred - y) ** 2)) / total
    return result


def default_metrics(
    task: TaskSpec, out: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> dict[str, float]:
    """The metrics of the task's kind."""
    y = np.asarray(y, dtype=np.float64)
    if task.kind == "binary":
        return binary_metrics(out, y)
    if task.kind == "multiclass":
        return multiclass_metrics(out, y, task.n_classes)
    return regression_metrics(task, out, y)
