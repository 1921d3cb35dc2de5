"""Differential privacy: accountant monotonic and matching known values, the budget is enforced."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.dp import (
    DpConfig,
    PolicyAccountant,
    PrivacyBudget,
    epsilon_after,
    noise_for_rounds,
    os_gaussian,
    privatize_update,
)
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


def _noise_of(update: dict[str, np.ndarray], rng: np.random.Generator | None) -> np.ndarray:
    """What privatize_update added to an update whose norm is under the clip."""
    out = bytes_to_weights(privatize_update(weights_to_bytes(update), 10.0, 0.5, rng))
    return (out["w"].astype(np.float64) - update["w"]).ravel()


def test_two_sites_noise_vectors_are_independent_and_gaussian() -> None:
    """Two sites privatising the same update at the same height draw uncorrelated noise of
    standard deviation noise_multiplier * clip_norm."""
    update = {"w": np.zeros(40_000, "f4")}
    a, b = _noise_of(update, None), _noise_of(update, None)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03
    assert a.std() == pytest.approx(5.0, rel=0.03) and abs(a.mean()) < 0.1
    assert not np.array_equal(a, b)


def test_the_noise_cannot_be_regenerated_from_the_height() -> None:
    """The old noise, seeded by the public height, was subtracted by anyone to ~1e-6; the OS
    noise regenerated the same way leaves the whole noise in place."""
    height = 7
    update = {"w": np.linspace(-0.1, 0.1, 4_000).astype("f4")}

    def guess() -> np.ndarray:
        return np.random.default_rng([height, 0xD9]).normal(0.0, 5.0, update["w"].shape)

    old = _noise_of(update, np.random.default_rng([height, 0xD9]))  # the seeded scheme
    assert np.abs(old - guess()).max() < 1e-5  # the attack works on it
    new = _noise_of(update, None)
    assert np.linalg.norm(new - guess()) > 0.5 * np.linalg.norm(new)
    assert abs(np.corrcoef(new, guess())[0, 1]) < 0.1


def test_os_gaussian_has_the_shape_and_no_zero_log() -> None:
    """Odd sizes and multi-dimensional shapes come back whole and finite."""
    sample = os_gaussian((3, 5, 7), 2.0)
    assert sample.shape == (3, 5, 7) and np.isfinite(sample).all()


def test_policy_accountant_is_the_accountant_cached() -> None:
    """PolicyAccountant gives epsilon_after's values and remembers them."""
    accountant = PolicyAccountant(2.0, 1e-5)
    config = DpConfig(epsilon=1.0, noise_multiplier=2.0)
    assert accountant.epsilon_after(4) == epsilon_after(config, 4)
    assert accountant.epsilon_after(0) == 0.0 and 4 in accountant._cache
