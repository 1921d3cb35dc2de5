"""Evaluation on a split and the verdict a validator attests: did the candidate improve the model?

Metrics are the task plugin's (`learning.metrics` for the defaults of each kind): `loss` always,
plus e.g. `auc` for a binary task (only when both classes are present), `macro_auc` for a
multiclass one, `rmse`, `mae` and `r2` for a regression task.

The verdict `improved(before, after, rule)` compares one metric with a tolerance from the genesis:
a candidate counts as improved when it is not worse than the current model by more than the
tolerance. A positive tolerance keeps the chain accepting models once learning has converged and
metric changes are noise; a poisoned candidate is worse by far more than that. When the rule's
metric is absent (a validation split with one class has no AUC) the verdict uses the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learning.data import Split
from learning.metrics import LOWER_IS_BETTER
from learning.models import build_model, load_weights
from learning.plugin import resolve
from learning.serialize import bytes_to_weights
from learning.task import TaskSpec


@dataclass(frozen=True, slots=True)
class VerdictRule:
    """Which metric decides "improved" and how much worse a candidate may be (absolute)."""

    metric: str = "loss"
    tolerance: float = 0.005

    def __post_init__(self) -> None:
        if self.metric not in LOWER_IS_BETTER:
            raise ValueError(f"verdict metric must be one of {sorted(LOWER_IS_BETTER)}")
        if not np.isfinite(self.tolerance):
            raise ValueError("verdict tolerance must be finite")

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a plain map for the genesis."""
        return {"metric": self.metric, "tolerance": float(self.tolerance)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerdictRule:
        """Build a rule from a genesis map."""
        tolerance = data.get("tolerance", 0.005)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise ValueError("verdict tolerance must be a number")
        return cls(metric=str(data.get("metric", "loss")), tolerance=float(tolerance))


def predict(task: TaskSpec, weights_blob: bytes, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Return raw model outputs (logits, or standardised targets) for `x` as float64."""
    model = build_model(task)
    load_weights(model, bytes_to_weights(weights_blob))
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return np.asarray(out.numpy(), dtype=np.float64)


def metrics_from_outputs(
    task: TaskSpec, out: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> dict[str, float]:
    """Compute the task's metrics from model outputs and true labels (the plugin's metrics)."""
    return resolve(task).metrics(task, out, np.asarray(y, dtype=np.float64))


def evaluate(task: TaskSpec, weights_blob: bytes, split: Split) -> dict[str, float]:
    """Return loss and the task's metrics of a model blob on a split."""
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    return metrics_from_outputs(task, predict(task, weights_blob, split.x), split.y)


def verdict_metric(before: dict[str, float], after: dict[str, float], rule: VerdictRule) -> str:
    """The metric the verdict uses: the rule's, or "loss" where the rule's is undefined."""
    return rule.metric if rule.metric in before and rule.metric in after else "loss"


def improved(before: dict[str, float], after: dict[str, float], rule: VerdictRule) -> bool:
    """Return the attestation verdict: is `after` no worse than `before` beyond the tolerance."""
    metric = verdict_metric(before, after, rule)
    tolerance = rule.tolerance if metric == rule.metric else 0.0
    gain = after[metric] - before[metric]
    if LOWER_IS_BETTER[metric]:
        gain = -gain
    if not np.isfinite(gain):
        return False
    return gain >= -tolerance
