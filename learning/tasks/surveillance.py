"""Built-in forecasting task: next week's case count per region, from an SEIR model in code.

The data is generated, not downloaded: `REGIONS` regions, each a discrete-time SEIR model
(susceptible, exposed, infectious, recovered; Kermack-McKendrick with a latent stage) with its
own population, transmission rate, seasonal forcing, waning immunity, importations and reporting
rate, simulated day by day for `WEEKS` weeks and observed as weekly reported cases with Poisson
noise. Regions differ, so the sites are non-IID by construction: site s holds the regions
r = s, s + n_sites, ... (the partition is by region; only "iid", the default, is accepted).

A sample is the last `WINDOW` weeks of log(1 + cases) of one region; the label is the next
week's log(1 + cases), and the metric is the MAE of that (so an error of 0.1 is about 10 % of
the count at any scale). The split is temporal: the last `TEST_FRACTION` of every region's weeks
are the global test split, the last `VAL_FRACTION` of each region's remaining weeks a site's
validation split. The model is a one-layer GRU with `HIDDEN` units and a linear head.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from learning.data import DataError, SiteData, Split, normalise
from learning.plugin import BuiltinData, Task
from learning.task import TaskSpec
from learning.trainer import TrainConfig

REGIONS = 12
WEEKS = 208
WINDOW = 8
HIDDEN = 16
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2
DATA_SEED = 20_240_601
"""The data set is fixed (like a shipped file); run seeds only change the model's initial weights."""

Array = npt.NDArray[np.float64]


def seir_weekly_cases(region: int) -> Array:
    """Weekly reported cases of one region (deterministic for the region number)."""
    rng = np.random.default_rng([DATA_SEED, region])
    population = float(rng.uniform(2e4, 2e6))
    r0 = rng.uniform(1.4, 2.6)
    latent, infectious = 1 / rng.uniform(2.0, 5.0), 1 / rng.uniform(4.0, 8.0)
    beta0 = r0 * infectious
    amplitude, phase = rng.uniform(0.1, 0.35), rng.uniform(0, 2 * np.pi)
    waning = 1 / rng.uniform(180.0, 540.0)
    reporting = rng.uniform(0.05, 0.3)
    imports = rng.uniform(0.5, 5.0)
    s, e, i, r = population - 10.0, 0.0, 10.0, 0.0
    weekly = np.zeros(WEEKS)
    for day in range(WEEKS * 7):
        beta = beta0 * (1 + amplitude * np.cos(2 * np.pi * day / 365.0 + phase))
        infections = min(s, beta * s * i / population + imports * s / population)
        onsets, recoveries, waned = latent * e, infectious * i, waning * r
        s, e, i, r = s - infections + waned, e + infections - onsets, i + onsets - recoveries, r
        r += recoveries - waned
        weekly[day // 7] += reporting * onsets
    return rng.poisson(weekly).astype(np.float64)


def _windows(series: Array) -> tuple[Array, Array]:
    logs = np.log1p(series)
    x = np.stack([logs[t : t + WINDOW] for t in range(len(logs) - WINDOW)])
    return x, logs[WINDOW:]


class SeasonalGru(nn.Module):
    """A GRU over the window of weekly log-counts, then a linear head (one output)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised next-week value, one per window of `x`."""
        states, _ = self.gru(x.view(x.shape[0], -1, 1))
        out: torch.Tensor = self.head(states[:, -1]).squeeze(-1)
        return out


class RegionData:
    """The regions' windows, split in time, one site per group of regions."""

    def _region(self, spec: TaskSpec, region: int) -> tuple[Split, Split, Split]:
        x, y = _windows(seir_weekly_cases(region))
        split = Split(normalise(spec, x), y.astype(np.float32))
        n = len(split)
        test_at = n - round(n * TEST_FRACTION)
        val_at = test_at - round(test_at * VAL_FRACTION)
        index = np.arange(n, dtype=np.int64)
        return (
            split.take(index[:val_at]),
            split.take(index[val_at:test_at]),
            split.take(index[test_at:]),
        )

    def sites(self, spec: TaskSpec, n_sites: int, partition: str, seed: int) -> list[SiteData]:
        """Site s holds regions s, s + n_sites, ...; each keeps its regions' later weeks."""
        del seed
        if partition != "iid":
            raise DataError(
                f"the surveillance task partitions by region (non-IID by construction); "
                f"partition {partition!r} does not apply, use iid"
            )
        if not 1 <= n_sites <= REGIONS:
            raise DataError(f"the surveillance task has {REGIONS} regions for 1..{REGIONS} sites")
        out = []
        for site in range(n_sites):
            parts = [self._region(spec, r) for r in range(site, REGIONS, n_sites)]
            out.append(SiteData(_concat([p[0] for p in parts]), _concat([p[1] for p in parts])))
        return out

    def global_test(self, spec: TaskSpec, seed: int) -> Split:
        """The last weeks of every region."""
        return _concat([self._region(spec, r)[2] for r in range(REGIONS)])

    def pooled_train(self, spec: TaskSpec, seed: int) -> Split:
        """Every region's training weeks."""
        return _concat([self._region(spec, r)[0] for r in range(REGIONS)])


def _concat(splits: list[Split]) -> Split:
    return Split(np.concatenate([s.x for s in splits]), np.concatenate([s.y for s in splits]))


class SurveillanceTask(Task):
    """Forecasting weekly case counts: regression on log counts, GRU, MAE."""

    name = "surveillance"
    version = "1"
    models = ("gru",)

    def spec(self, model: str | None = None, hidden: tuple[int, ...] | None = None) -> TaskSpec:
        logs = np.concatenate([np.log1p(seir_weekly_cases(r)) for r in range(REGIONS)])
        center, scale = float(logs.mean()), float(logs.std())
        return TaskSpec(
            name="surveillance",
            dataset="surveillance",
            kind="regression",
            model=model or "gru",
            features=tuple(f"log_cases_week_minus_{WINDOW - k}" for k in range(WINDOW)),
            label="log_cases_next_week",
            metric="mae",
            hidden=hidden or (HIDDEN,),
            feature_center=(center,) * WINDOW,
            feature_scale=(scale,) * WINDOW,
            label_center=center,
            label_scale=scale,
            input_shape=(WINDOW, 1),
        )

    def build_model(self, spec: TaskSpec) -> nn.Module:
        return SeasonalGru(spec.hidden[0])

    def builtin(self) -> BuiltinData | None:
        return RegionData()

    def train_config(self, spec: TaskSpec) -> TrainConfig | None:
        return TrainConfig(epochs=2, batch_size=32, lr=0.01, optimizer="adam")


task = SurveillanceTask()
