"""Evaluation on a split and the verdict a validator attests: did the candidate improve the model?

Metrics are the task plugin's (`learning.metrics` for the defaults of each kind): `loss` always,
plus e.g. `auc` for a binary task (only when both classes are present), `macro_auc` for a
multiclass one, `rmse`, `mae` and `r2` for a regression task.

The verdict `improved(before, after, rule, best=...)` compares one metric on two bounds from the
genesis: the candidate may be at most `noise_margin` worse than the current model (metric changes
of a converged model are noise; a poisoned candidate is worse by far more), and at most
`max_regression` worse than the best model the chain certified so far (`best`). The second
bound is what stops slow drift: a poisoner who degrades the model by just under the noise margin
every block passes the first bound every time, but after a few blocks falls outside the second
(docs/THREAT-MODEL.md "Slow drift"). When the rule's metric is absent (a validation split with
one class has no AUC) the verdict uses the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learning.data import Split
from learning.metrics import LOWER_IS_BETTER
from learning.models import build_model, load_view
from learning.plugin import resolve
from learning.serialize import Blob, TensorView
from learning.task import TaskSpec


@dataclass(frozen=True, slots=True)
class VerdictRule:
    """Which metric decides "improved", and how much worse (absolute) a candidate may measure:
    than its parent (`noise_margin`), and than the best certified model (`max_regression`)."""

    metric: str = "loss"
    noise_margin: float = 0.005
    max_regression: float = 0.01

    def __post_init__(self) -> None:
        if self.metric not in LOWER_IS_BETTER:
            raise ValueError(f"verdict metric must be one of {sorted(LOWER_IS_BETTER)}")
        if not np.isfinite(self.noise_margin):
            raise ValueError("verdict noise_margin must be finite")
        if not (np.isfinite(self.max_regression) and self.max_regression >= 0):
            raise ValueError("verdict max_regression must be a finite number >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a plain map for the genesis."""
        return {
            "metric": self.metric,
            "noise_margin": float(self.noise_margin),
            "max_regression": float(self.max_regression),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerdictRule:
        """Build a rule from a genesis map."""
        values = {}
        for key, default in (("noise_margin", 0.005), ("max_regression", 0.01)):
            value = data.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"verdict {key} must be a number")
            values[key] = float(value)
        return cls(metric=str(data.get("metric", "loss")), **values)


def predict(task: TaskSpec, weights_blob: Blob, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Return raw model outputs (logits, or standardised targets) for `x` as float64."""
    model = build_model(task)
    load_view(model, TensorView(weights_blob))  # tensor by tensor: no second copy of the model
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return np.asarray(out.numpy(), dtype=np.float64)


def metrics_from_outputs(
    task: TaskSpec, out: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> dict[str, float]:
    """Compute the task's metrics from model outputs and true labels (the plugin's metrics)."""
    return resolve(task).metrics(task, out, np.asarray(y, dtype=np.float64))


def evaluate(task: TaskSpec, weights_blob: Blob, split: Split) -> dict[str, float]:
    """Return loss and the task's metrics of a model blob on a split."""
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    return metrics_from_outputs(task, predict(task, weights_blob, split.x), split.y)


def _gain(before: dict[str, float], after: dict[str, float], metric: str) -> float:
    gain = after[metric] - before[metric]
    return -gain if LOWER_IS_BETTER[metric] else gain


def verdict_metric(before: dict[str, float], after: dict[str, float], rule: VerdictRule) -> str:
    """The metric the verdict compares: the rule's, or the loss when either side lacks it."""
    return rule.metric if rule.metric in before and rule.metric in after else "loss"


def improved(
    before: dict[str, float],
    after: dict[str, float],
    rule: VerdictRule,
    *,
    best: dict[str, float] | None = None,
) -> bool:
    """Return the attestation verdict: `after` is no worse than `before` beyond the noise margin
    and no worse than `best` (the best certified model's metrics) beyond `max_regression`."""
    metric = verdict_metric(before, after, rule)
    margin = rule.noise_margin if metric == rule.metric else 0.0
    gain = _gain(before, after, metric)
    if not np.isfinite(gain) or gain < -margin:
        return False
    if best is not None and metric in best:
        from_best = _gain(best, after, metric)
        if not np.isfinite(from_best) or from_best < -rule.max_regression:
            return False
    return True


def best_of(
    best: dict[str, float] | None, candidate: dict[str, float], rule: VerdictRule
) -> dict[str, float]:
    """The better of two certified models' metrics under the rule's metric (loss if absent)."""
    if best is None:
        return dict(candidate)
    metric = verdict_metric(best, candidate, rule)
    return dict(candidate) if _gain(best, candidate, metric) > 0 else best
