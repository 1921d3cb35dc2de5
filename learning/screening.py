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
import numpy.typing as npt

from learning.serialize import bytes_to_weights

MIN_UPDATES = 3


def _flatten(blob: bytes) -> npt.NDArray[np.float64]:
    weights = bytes_to_weights(blob)
    return np.concatenate([weights[name].astype(np.float64).ravel() for name in sorted(weights)])


def screen_outliers(
    updates: Sequence[bytes], *, min_cosine: float = 0.0, max_norm_ratio: float = 4.0
) -> list[str | None]:
    """For each update blob, "outlier" if it should be excluded, else None (same order)."""
    if len(updates) < MIN_UPDATES:
        return [None] * len(updates)
    vectors = np.stack([_flatten(blob) for blob in updates])
    centre = np.median(vectors, axis=0)
    centre_norm = float(np.linalg.norm(centre))
    norms = np.linalg.norm(vectors, axis=1)
    median_norm = float(np.median(norms))
    verdicts: list[str | None] = []
    for vector, norm in zip(vectors, norms, strict=True):
        cosine = (
            float(vector @ centre) / (float(norm) * centre_norm) if norm and centre_norm else 1.0
        )
        too_long = median_norm > 0 and float(norm) > max_norm_ratio * median_norm
        verdicts.append("outlier" if cosine < min_cosine or too_long else None)
    return verdicts
