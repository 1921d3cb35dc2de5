"""Differential privacy for a site's updates: clip, add Gaussian noise, account with Rényi DP.

The Gaussian mechanism on a site's whole update (DP-FedAvg, McMahan et al. 2018, applied at the
site): the delta is scaled down to at most `clip_norm` in L2 norm and N(0, (noise_multiplier *
clip_norm)^2) is added to every coordinate. That protects everything the site's data set
contributes to one round. Each release is one step of the sampled Gaussian mechanism with
sampling rate 1 (the site takes part in every round it releases in); the privacy loss is tracked
by Opacus's `RDPAccountant` (Mironov 2017) and reported as (epsilon, delta).

A site with a budget never exceeds it: `can_release()` is False once one more release would push
epsilon past the budget, and the site then stops contributing. When no noise multiplier is given,
`noise_for_rounds` calibrates one so that the budget lasts a planned number of rounds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from learning.serialize import bytes_to_weights, weights_to_bytes
from learning.validation import update_norm

# Rényi orders searched for the tightest epsilon: Opacus' defaults plus finer low and higher orders.
RDP_ORDERS = sorted(
    {1 + x / 100 for x in range(1, 10)}
    | {1 + x / 10 for x in range(1, 100)}
    | set(range(12, 64))
    | set(range(64, 1025, 16))
)


@dataclass(frozen=True, slots=True)
class DpConfig:
    """A site's privacy budget and mechanism parameters."""

    epsilon: float
    delta: float = 1e-5
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and 0 < self.delta < 1):
            raise ValueError("DP epsilon must be positive and delta in (0, 1)")
        if not (self.clip_norm > 0 and self.noise_multiplier > 0):
            raise ValueError("DP clip_norm and noise_multiplier must be positive")


def noise_for_rounds(epsilon: float, delta: float, rounds: int) -> float:
    """Return the noise multiplier whose budget (epsilon, delta) lasts exactly `rounds` releases."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=1.0,
            steps=max(1, rounds),
            accountant="rdp",
            epsilon_tolerance=0.005,
        )
    )


def epsilon_after(config: DpConfig, releases: int) -> float:
    """Return epsilon spent at `config.delta` after `releases` releases (0 for none)."""
    if releases <= 0:
        return 0.0
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(config.noise_multiplier, 1.0, releases)]
    with warnings.catch_warnings():
        # Opacus warns when the optimal order is at the edge of its grid; the grid below is
        # wide enough for any useful budget, and at the edge the bound is valid, only loose.
        warnings.filterwarnings("ignore", message="Optimal order", category=UserWarning)
        return float(accountant.get_epsilon(config.delta, alphas=RDP_ORDERS))


class PrivacyBudget:
    """One site's privacy ledger: privatises updates and refuses to overspend."""

    def __init__(self, config: DpConfig) -> None:
        self.config = config
        self.releases = 0

    def spent(self) -> float:
        """Return epsilon spent so far (at the configured delta)."""
        return epsilon_after(self.config, self.releases)

    def can_release(self) -> bool:
        """Return whether one more release stays within the epsilon budget."""
        return epsilon_after(self.config, self.releases + 1) <= self.config.epsilon

    def privatize(self, update_blob: bytes, seed: int) -> bytes:
        """Clip the delta, add Gaussian noise and record the release; refuse past the budget."""
        if not self.can_release():
            raise RuntimeError("privacy budget exhausted: this site must stop contributing")
        update = bytes_to_weights(update_blob)
        norm = update_norm(update)
        factor = min(1.0, self.config.clip_norm / norm) if norm > 0 else 1.0
        sigma = self.config.noise_multiplier * self.config.clip_norm
        rng = np.random.default_rng([seed, 0xD9])
        noisy = {
            name: (
                update[name].astype(np.float64) * factor + rng.normal(0.0, sigma, arr.shape)
            ).astype(np.float32)
            for name, arr in sorted(update.items())
        }
        self.releases += 1
        return weights_to_bytes(noisy)
