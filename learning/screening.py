"""Outlier screening of updates before aggregation (docs/ARCHITECTURE.md "Proof of learning": a proposer
whose candidate cannot win an improvement quorum builds a stricter one, "outliers excluded").

A proposer screens the updates it collected against their coordinate-wise median, the robust
centre that a minority of poisoned updates cannot move far:
- an update pointing against the median (cosine similarity below `min_cosine`) is an outlier
  (a sign-flipped update: global - k x delta);
- an update whose norm exceeds `max_norm_ratio` x the median norm is an outlier (scaling).
Screening is the proposer's choice of which receipts to include; validators recompute the
aggregation over the included receipts only, so it needs no agreement. With fewer than three
updates there is no meaningful majority and nothing is excluded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from learning.serialize import Blob, TensorView

MIN_UPDATES = 3
CHUNK = 1 << 18  # coordinates per chunk: n x CHUNK float64 values in memory at a time


def screen_outliers(
    updates: Sequence[Blob], *, min_cosine: float = 0.0, max_norm_ratio: float = 4.0
) -> list[str | None]:
    """For each update blob, "outlier" if it should be excluded, else None (same order).

    The median, the norms and the dot products are accumulated one chunk of coordinates at a
    time, so memory does not grow with the model (the updates must share one set of tensors,
    which `validate_update` has checked).
    """
    if len(updates) < MIN_UPDATES:
        return [None] * len(updates)
    views = [TensorView(blob) for blob in updates]
    n = len(views)
    layout = [(name, views[0].shape(name)) for name in views[0].names]
    if any([(name, v.shape(name)) for name in v.names] != layout for v in views[1:]):
        raise ValueError("updates to screen must share one set of tensors")
    dots = np.zeros(n, dtype=np.float64)
    squares = np.zeros(n, dtype=np.float64)
    centre_square = 0.0
    for name, start, stop in views[0].spans(CHUNK):
        block = np.stack([v.read(name, start, stop).astype(np.float64) for v in views])
        centre = np.median(block, axis=0)
        dots += block @ centre
        squares += np.sum(block * block, axis=1)
        centre_square += float(centre @ centre)
    centre_norm = float(np.sqrt(centre_square))
    norms = np.sqrt(squares)
    median_norm = float(np.median(norms))
    verdicts: list[str | None] = []
    for dot, norm in zip(dots, norms, strict=True):
        cosine = float(dot) / (float(norm) * centre_norm) if norm and centre_norm else 1.0
        too_long = median_norm > 0 and float(norm) > max_norm_ratio * median_norm
        verdicts.append("outlier" if cosine < min_cosine or too_long else None)
    return verdicts
