"""Splits and partitioners that mimic hospitals.

The built-in data sets are tasks (`learning.tasks`); most hold their data as arrays
(`ArrayData`). Splitting, for such a data set and a seed:
1. a stratified 20 % global test split is held out first; no site ever trains on it, and the
   simulator reports every baseline on it;
2. the rest is divided among the sites: `iid` (shuffled, equal sizes), `dirichlet:ALPHA` (label
   skew: each class is spread over the sites by proportions drawn from Dir(ALPHA), Hsu et al. 2019;
   a regression target is binned into quartiles first), `quantity:ALPHA` (quantity skew: site sizes
   drawn from Dir(ALPHA), labels uniform), `label-skew:K` (pathological label skew, McMahan et
   al. 2017: site s holds only the K classes s*K, s*K+1, ... modulo the number of classes, each
   class shared evenly by the sites holding it; K = 1 gives one-class sites). Every site gets at least `MIN_SITE_SAMPLES` samples
   (draws are repeated deterministically until that holds, as in the usual FL benchmarks);
3. each site keeps a private validation split (20 %, at least one sample) for its attestations.

Everything is a pure function of (task, number of sites, partition, seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from learning.task import TaskSpec

TEST_FRACTION = 0.2
VAL_FRACTION = 0.2
MIN_SITE_SAMPLES = 10


class DataError(ValueError):
    """Bad data or a bad partition spec; the message is one sentence naming what is wrong."""


@dataclass(frozen=True, slots=True)
class Split:
    """Samples ready for a model: normalised float32 features and float32 labels."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, index: npt.NDArray[np.int64]) -> Split:
        """Return the samples at `index`."""
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True, slots=True)
class SiteData:
    """One site's private data: what it trains on and what it attests on."""

    train: Split
    val: Split


def normalise(task: TaskSpec, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Apply the task's declared feature centre and scale."""
    out = np.asarray(x, dtype=np.float64)
    if task.feature_center:
        out = out - np.asarray(task.feature_center)
    if task.feature_scale:
        out = out / np.asarray(task.feature_scale)
    return out.astype(np.float32)


def _strata(task: TaskSpec, y: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """Class labels for stratification: the label itself, or quartile bins of a target."""
    if task.kind in ("binary", "multiclass"):
        return y.astype(np.int64)
    edges = np.quantile(y, [0.25, 0.5, 0.75])
    return np.searchsorted(edges, y, side="right").astype(np.int64)


def _stratified_cut(
    strata: npt.NDArray[np.int64], fraction: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Split indices into (rest, held) with `fraction` of every stratum held, at least one."""
    held: list[npt.NDArray[np.int64]] = []
    rest: list[npt.NDArray[np.int64]] = []
    for value in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == value))
        k = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        held.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(held))


def parse_partition(spec: str) -> tuple[str, float]:
    """Parse "iid", "dirichlet:ALPHA", "quantity:ALPHA" or "label-skew:K" into (scheme, arg)."""
    scheme, _, arg = spec.partition(":")
    if scheme == "iid" and not arg:
        return "iid", 0.0
    if scheme == "label-skew":
        if arg.isdigit() and int(arg) >= 1:
            return scheme, float(int(arg))
        raise DataError(
            f"partition {spec!r} needs a whole number of classes per site, e.g. {scheme}:1"
        )
    if scheme in ("dirichlet", "quantity"):
        try:
            alpha = float(arg)
        except ValueError:
            alpha = -1.0
        if alpha > 0 and np.isfinite(alpha):
            return scheme, alpha
        raise DataError(f"partition {spec!r} needs a positive alpha, e.g. {scheme}:0.5")
    raise DataError(
        f"unknown partition {spec!r} (use iid, dirichlet:ALPHA, quantity:ALPHA or label-skew:K)"
    )


def partition_indices(
    strata: npt.NDArray[np.int64], n_sites: int, spec: str, seed: int
) -> list[npt.NDArray[np.int64]]:
    """Assign sample indices to `n_sites` sites by the partition spec (deterministic)."""
    scheme, alpha = parse_partition(spec)
    n = len(strata)
    if n_sites < 1:
        raise DataError("the number of sites must be at least 1")
    if n < n_sites * MIN_SITE_SAMPLES:
        raise DataError(
            f"{n} training samples cannot give {n_sites} sites {MIN_SITE_SAMPLES} samples each"
        )
    rng = np.random.default_rng([seed, 0x5175])
    if scheme == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), n_sites)]
    if scheme == "label-skew":
        return _label_skew(strata, n_sites, int(alpha), spec, rng)
    for _attempt in range(1000):
        parts: list[list[int]] = [[] for _ in range(n_sites)]
        if scheme == "dirichlet":
            for value in np.unique(strata):
                idx = rng.permutation(np.flatnonzero(strata == value))
                cuts = (np.cumsum(rng.dirichlet([alpha] * n_sites)) * len(idx)).astype(int)[:-1]
                for site, chunk in enumerate(np.split(idx, cuts)):
                    parts[site].extend(int(i) for i in chunk)
        else:
            idx = rng.permutation(n)
            cuts = (np.cumsum(rng.dirichlet([alpha] * n_sites)) * n).astype(int)[:-1]
            for site, chunk in enumerate(np.split(idx, cuts)):
                parts[site].extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= MIN_SITE_SAMPLES:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise DataError(f"partition {spec!r} left a site with fewer than {MIN_SITE_SAMPLES} samples")


def _label_skew(
    strata: npt.NDArray[np.int64], n_sites: int, per_site: int, spec: str, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Site s holds classes s*K .. s*K+K-1 (mod C); each class is cut evenly among its holders."""
    classes = np.unique(strata)
    holders: dict[int, list[int]] = {int(c): [] for c in classes}
    for site in range(n_sites):
        for j in range(min(per_site, len(classes))):
            holders[int(classes[(site * per_site + j) % len(classes)])].append(site)
    parts: list[list[int]] = [[] for _ in range(n_sites)]
    for value, sites in holders.items():
        idx = rng.permutation(np.flatnonzero(strata == value))
        if not sites:
            sites = [value % n_sites]  # more classes than sites x K: no class is dropped
        for site, chunk in zip(sites, np.array_split(idx, len(sites)), strict=True):
            parts[site].extend(int(i) for i in chunk)
    if min(len(p) for p in parts) < MIN_SITE_SAMPLES:
        raise DataError(
            f"partition {spec!r} left a site with fewer than {MIN_SITE_SAMPLES} samples"
        )
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def split_train_val(split: Split, val_fraction: float = VAL_FRACTION, seed: int = 0) -> SiteData:
    """Keep a private validation split of a site's data (at least one sample each side)."""
    n = len(split)
    if n < 2:
        raise DataError("a site needs at least two samples to keep a validation split")
    rng = np.random.default_rng([seed, 0x0A11])
    order = rng.permutation(n)
    k = min(n - 1, max(1, round(n * val_fraction)))
    return SiteData(train=split.take(np.sort(order[k:])), val=split.take(np.sort(order[:k])))


class ArrayData:
    """A data set held as arrays: a stratified global test cut, then a partition among sites.

    `raw()` returns the unnormalised features (one row per sample) and the labels; the task's
    declared normalisation is applied here. This is the `BuiltinData` of the built-in tasks.
    """

    def __init__(
        self, raw: Callable[[], tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]
    ) -> None:
        self._raw = raw

    def _cut(self, task: TaskSpec, seed: int) -> tuple[Split, npt.NDArray[np.int64], Split]:
        x, y = self._raw()
        data = Split(normalise(task, x), y.astype(np.float32))
        rng = np.random.default_rng([seed, 0x7E57])
        rest, held = _stratified_cut(_strata(task, data.y), TEST_FRACTION, rng)
        return data, rest, data.take(held)

    def global_test(self, task: TaskSpec, seed: int) -> Split:
        """The held-out global test split."""
        return self._cut(task, seed)[2]

    def pooled_train(self, task: TaskSpec, seed: int) -> Split:
        """Every site's training data pooled."""
        data, rest, _ = self._cut(task, seed)
        return data.take(rest)

    def sites(self, task: TaskSpec, n_sites: int, partition: str, seed: int) -> list[SiteData]:
        """Every site's train and validation splits."""
        data, rest, _ = self._cut(task, seed)
        pool = data.take(rest)
        parts = partition_indices(_strata(task, pool.y), n_sites, partition, seed)
        return [
            split_train_val(pool.take(part), VAL_FRACTION, seed * 1_000_003 + site)
            for site, part in enumerate(parts)
        ]
