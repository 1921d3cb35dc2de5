"""Outlier screening: sign-flipped and scaled updates are excluded, honest ones kept."""

from __future__ import annotations

import numpy as np

from learning.screening import screen_outliers
from learning.serialize import weights_to_bytes


def blob(vector: list[float]) -> bytes:
    return weights_to_bytes({"w": np.asarray(vector, dtype=np.float32)})


def honest(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.array([1.0, 2.0, -1.0, 0.5]) + rng.normal(0, 0.1, 4))


def test_sign_flipped_update_is_an_outlier() -> None:
    """global - 5 x delta points against the median of the honest updates."""
    updates = [blob(honest(i)) for i in range(3)] + [blob([-5 * v for v in honest(9)])]
    assert screen_outliers(updates) == [None, None, None, "outlier"]


def test_scaled_update_is_an_outlier() -> None:
    """An update ten times longer than the median is excluded."""
    updates = [blob(honest(i)) for i in range(3)] + [blob([10 * v for v in honest(9)])]
    assert screen_outliers(updates) == [None, None, None, "outlier"]


def test_honest_updates_are_all_kept() -> None:
    """Similar updates pass untouched."""
    assert screen_outliers([blob(honest(i)) for i in range(5)]) == [None] * 5


def test_two_updates_are_never_screened() -> None:
    """Below three updates there is no majority to screen against."""
    assert screen_outliers([blob(honest(0)), blob([-1.0, -2.0, 1.0, -0.5])]) == [None, None]
