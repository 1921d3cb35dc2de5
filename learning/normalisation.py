"""Normalisation computed at genesis from per-site summary statistics, combined exactly.

Each site publishes, for its own rows, only the count and the per-feature mean and sum of
squared deviations (M2 = count x variance); no row leaves the site. The consortium combines
them with the pairwise update of Chan, Golub and LeVeque (1979), which gives exactly the pooled
mean and variance (up to float rounding), and declares the result as the task's
`feature_center` / `feature_scale` in the genesis. A feature with zero pooled variance keeps a
scale of 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from learning.task import TaskError, TaskSpec


@dataclass(frozen=True, slots=True)
class FeatureSummary:
    """Count, per-feature mean and per-feature sum of squared deviations of some rows."""

    count: int
    mean: tuple[float, ...]
    m2: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """A plain map (a site's summary file)."""
        return {"count": self.count, "mean": list(self.mean), "m2": list(self.m2)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FeatureSummary:
        """Parse a summary map; raise TaskError naming `where` and the bad field."""
        ok = (
            isinstance(data, dict)
            and set(data) == {"count", "mean", "m2"}
            and isinstance(data["count"], int)
            and data["count"] > 0
            and all(isinstance(data[k], list) for k in ("mean", "m2"))
            and len(data["mean"]) == len(data["m2"])
        )
        if not ok:
            raise TaskError(f"{where}: a site summary needs count > 0 and equal-length mean, m2")
        values = [*data["mean"], *data["m2"]]
        if not all(isinstance(v, int | float) and np.isfinite(v) for v in values):
            raise TaskError(f"{where}: mean and m2 must be finite numbers")
        if any(v < 0 for v in data["m2"]):
            raise TaskError(f"{where}: m2 (sums of squared deviations) must not be negative")
        return cls(data["count"], tuple(map(float, data["mean"])), tuple(map(float, data["m2"])))


def summarise(x: npt.NDArray[np.float64]) -> FeatureSummary:
    """The summary of a site's raw (unnormalised) feature rows."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    return FeatureSummary(
        len(x), tuple(map(float, mean)), tuple(map(float, ((x - mean) ** 2).sum(axis=0)))
    )


def combine(summaries: Sequence[FeatureSummary]) -> FeatureSummary:
    """The exact summary of the union of the summarised rows."""
    if not summaries:
        raise TaskError("normalisation needs at least one site summary")
    width = len(summaries[0].mean)
    if any(len(s.mean) != width for s in summaries):
        raise TaskError("site summaries describe different numbers of features")
    count, mean, m2 = 0, np.zeros(width), np.zeros(width)
    for s in summaries:
        other_mean, n = np.asarray(s.mean), s.count
        delta = other_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + np.asarray(s.m2) + delta**2 * (count * n / total)
        count = total
    return FeatureSummary(count, tuple(map(float, mean)), tuple(map(float, m2)))


def declare(spec: TaskSpec, summaries: Sequence[FeatureSummary]) -> TaskSpec:
    """The spec with the pooled mean and standard deviation as its declared normalisation."""
    pooled = combine(summaries)
    if len(pooled.mean) != spec.n_features:
        raise TaskError(
            f"site summaries have {len(pooled.mean)} features but the task has {spec.n_features}"
        )
    std = np.sqrt(np.asarray(pooled.m2) / pooled.count)
    scale = tuple(float(v) if v > 0 else 1.0 for v in std)
    return replace(spec, feature_center=pooled.mean, feature_scale=scale)
