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

The noise comes from the operating system's CSPRNG (`os.urandom`, i.e. getrandom(2)), secret to
the site and fresh for every release: nothing public (a height, a seed in the genesis) can
regenerate it, and two sites' noise vectors are independent (docs/THREAT-MODEL.md
"Differential privacy"). Uniforms of 53 bits become normals by the Box-Muller transform. Only
`bcfl simulate learning`, which needs reproducible runs, passes its own seeded generator.

`PolicyAccountant` is the genesis policy's accountant that the consensus core is handed
(`consensus.privacy.Accountant`): epsilon after k releases, cached, so validators check each
receipt's increment cheaply and the same way on every node.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

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


def os_gaussian(shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """N(0, sigma^2) samples of `shape` from the OS CSPRNG (Box-Muller over 53-bit uniforms)."""
    count = math.prod(shape)
    pairs = (count + 1) // 2
    raw = np.frombuffer(os.urandom(16 * pairs), dtype=np.uint64).reshape(2, pairs)
    # (x >> 11) + 1 over 2^53 is uniform on (0, 1]: the logarithm below never sees 0
    u1 = ((raw[0] >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
    u2 = (raw[1] >> np.uint64(11)).astype(np.float64) * 2.0**-53
    radius = np.sqrt(-2.0 * np.log(u1)) * sigma
    angle = 2.0 * np.pi * u2
    normals = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]
    return normals.reshape(shape)


def privatize_update(
    update_blob: bytes,
    clip_norm: float,
    noise_multiplier: float,
    rng: np.random.Generator | None = None,
) -> bytes:
    """Clip the delta to `clip_norm` and add N(0, (noise_multiplier * clip_norm)^2) noise.

    The noise is from the OS CSPRNG unless a simulation passes its own `rng`.
    """
    update = bytes_to_weights(update_blob)
    norm = update_norm(update)
    factor = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    sigma = noise_multiplier * clip_norm
    noisy = {}
    for name, arr in sorted(update.items()):
        noise = os_gaussian(arr.shape, sigma) if rng is None else rng.normal(0.0, sigma, arr.shape)
        noisy[name] = (arr.astype(np.float64) * factor + noise).astype(np.float32)
    return weights_to_bytes(noisy)


@dataclass(slots=True)
class PolicyAccountant:
    """Epsilon after k releases of the genesis mechanism (noise multiplier, delta), cached.

    Satisfies `consensus.privacy.Accountant`; the consensus core never imports opacus.
    """

    noise_multiplier: float
    delta: float
    _cache: dict[int, float] = field(default_factory=dict)

    def epsilon_after(self, releases: int) -> float:
        """Epsilon spent after `releases` releases (0 for none)."""
        cached = self._cache.get(releases)
        if cached is None:
            config = DpConfig(1.0, self.delta, 1.0, self.noise_multiplier)
            cached = self._cache[releases] = epsilon_after(config, releases)
        return cached


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

    def privatize(
        self, update_blob: bytes, rng: np.random.Generator | None = None, shares: int = 0
    ) -> bytes:
        """Clip the delta, add Gaussian noise and record the release; refuse past the budget.

        The noise is from the OS CSPRNG; only a simulation passes a seeded `rng`. `shares` m > 0
        adds this site's share of distributed noise, N(0, (z C)^2 / m): only under secure
        aggregation, where m shares sum to the accounted noise (consensus Privacy.dp_noise_shares).
        """
        if not self.can_release():
            raise RuntimeError("privacy budget exhausted: this site must stop contributing")
        multiplier = self.config.noise_multiplier / (shares**0.5 if shares > 0 else 1.0)
        noisy = privatize_update(update_blob, self.config.clip_norm, multiplier, rng)
        self.releases += 1
        return noisy
