"""Differential privacy: accountant monotonic and matching known values, the budget is enforced."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.dp import DpConfig, PrivacyBudget, epsilon_after, noise_for_rounds
from learning.serialize import bytes_to_weights, weights_to_bytes
from learning.validation import update_norm


def _closed_form(sigma: float, steps: int, delta: float) -> float:
    """RDP of the Gaussian mechanism (alpha * T / 2 sigma^2) with Balle et al. 2020 conversion."""
    best = math.inf
    for alpha in np.arange(1.01, 256, 0.01):
        rdp = alpha * steps / (2 * sigma**2)
        eps = rdp + math.log1p(-1 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, eps)
    return best


def test_epsilon_is_monotonic_in_releases() -> None:
    """Each release spends more privacy."""
    config = DpConfig(epsilon=10.0, noise_multiplier=2.0)
    values = [epsilon_after(config, k) for k in range(6)]
    assert values[0] == 0.0
    assert all(b > a for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize(("sigma", "steps"), [(5.0, 1), (8.0, 30), (2.0, 10)])
def test_accountant_matches_the_closed_form(sigma: float, steps: int) -> None:
    """Opacus' RDP epsilon matches the Gaussian mechanism's closed form within 2 %."""
    got = epsilon_after(DpConfig(epsilon=100.0, noise_multiplier=sigma), steps)
    assert got == pytest.approx(_closed_form(sigma, steps, 1e-5), rel=0.02)


def test_known_value() -> None:
    """sigma = 5, one release, delta = 1e-5 spends epsilon of about 0.79."""
    assert epsilon_after(DpConfig(epsilon=1.0, noise_multiplier=5.0), 1) == pytest.approx(
        0.7945, abs=1e-3
    )


def test_calibrated_noise_lasts_the_planned_rounds() -> None:
    """The calibrated multiplier spends at most the budget in the planned rounds."""
    sigma = noise_for_rounds(3.0, 1e-5, 30)
    config = DpConfig(epsilon=3.0, noise_multiplier=sigma)
    assert 2.9 <= epsilon_after(config, 30) <= 3.0


def test_budget_stops_the_site() -> None:
    """A site releases until the next release would exceed its budget, then refuses."""
    budget = PrivacyBudget(DpConfig(epsilon=2.0, noise_multiplier=5.0))
    blob = weights_to_bytes({"w": np.ones(4, "f4")})
    released = 0
    while budget.can_release():
        budget.privatize(blob)
        released += 1
    assert released == budget.releases > 0
    assert budget.spent() <= 2.0 < epsilon_after(budget.config, released + 1)
    with pytest.raises(RuntimeError):
        budget.privatize(blob)


def test_privatize_clips_before_adding_noise() -> None:
    """With negligible noise the released update has the clip norm."""
    budget = PrivacyBudget(DpConfig(epsilon=1e9, clip_norm=1.0, noise_multiplier=1e-4))
    out = budget.privatize(weights_to_bytes({"w": np.full(4, 10.0, "f4")}))
    assert update_norm(bytes_to_weights(out)) == pytest.approx(1.0, abs=1e-3)
