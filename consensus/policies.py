"""The rules a genesis fixes for everybody: the verdict, the timeouts, the safeguards against
insiders and the privacy policy (re-exported by consensus/types.py).

See docs/ARCHITECTURE.md "Blocks, certificates and the ledger" and docs/THREAT-MODEL.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VerdictRule:
    """How a validator turns its eval numbers into "improved" (applied in learning/, not here)."""

    metric: str
    noise_margin: float


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Timeouts in seconds; round r waits `base + r * delta` (Algorithm 1 lines 21, 35, 48).

    `update_window` runs from the start of a height; the proposer builds a candidate as soon as
    every expected trainer's receipt is in, otherwise when the window closes. `attestation` runs
    from the moment the proposer gossips its candidate.
    """

    propose: float = 3.0
    propose_delta: float = 1.0
    prevote: float = 1.0
    prevote_delta: float = 0.5
    precommit: float = 1.0
    precommit_delta: float = 0.5
    update_window: float = 60.0
    attestation: float = 30.0


@dataclass(frozen=True, slots=True)
class Safeguards:
    """Bounds on what one member may claim, fixed in the genesis (docs/THREAT-MODEL.md).

    - `max_samples_per_update`: the largest `n_samples` a receipt may claim; a larger claim is
      refused (`samples-over-cap`) and a block carrying one is invalid. Aggregation weights are
      further clipped to the round's median claim (learning/aggregate.py).
    - `timestamp_precision_ms`, `message_delay_ms`: proposer-based timestamps (CometBFT PBTS):
      a fresh proposal is timely at a validator whose clock reads `t` on receipt when
      `t - message_delay - precision <= block time <= t + precision`; an untimely one is
      prevoted nil. valid(v) itself only requires time above the parent's.
    - `max_regression`: a candidate's attested metric may be at most this much worse than the
      best model the chain certified (not merely its parent), so small steps cannot add up.
    - `evidence_consequence`: what committed evidence of a double sign costs its author.
      "slash": reputation only (`consensus.ledger.SLASH_EVIDENCE`); "remove": also removed
      from the member set (power and training weight zero) from GOVERNANCE_DELAY heights after
      the block that carries the evidence, by the governance mechanism (consensus/ledger.py).
    """

    max_samples_per_update: int = 1_000_000
    timestamp_precision_ms: int = 2_000
    message_delay_ms: int = 30_000
    max_regression: float = 0.01
    evidence_consequence: str = "slash"


EVIDENCE_CONSEQUENCES = ("slash", "remove")


@dataclass(frozen=True, slots=True)
class Privacy:
    """The consortium's privacy policy, fixed in the genesis (docs/THREAT-MODEL.md "Differential
    privacy"): every site and validator applies this one; a site's config cannot weaken it.

    Differential privacy (DP-FedAvg at the site, Gaussian mechanism, sampling rate 1):

    - `clip_norm`: each site clips its update to this L2 norm; 0 turns DP off.
    - `noise_multiplier`: the site adds N(0, (noise_multiplier * clip_norm)^2) per coordinate.
    - `delta`: the delta at which epsilon is accounted (RDP, learning/dp.py).
    - `epsilon_budget`: the per-site epsilon a site may spend over the chain's life; validators
      refuse a receipt that would take its site past it (`dp-budget`); 0 means no budget.

    Secure aggregation (trainers mask their clipped, quantised updates; only the sum is public):

    - `secure_aggregation`: the switch; it needs the "fedavg" rule (nothing may read one update).
    - `secagg_neighbours`: how many masking neighbours each trainer pairs with (0: all pairs).
    - `secagg_threshold`: how many of a trainer's neighbours must survive to recover its masks.
    - `secagg_clip_range`, `secagg_quant_range`, `secagg_modulus_bits`: fixed-point quantisation
      of each coordinate in [-clip_range, clip_range] to [0, quant_range], summed modulo
      2^modulus_bits.

    Distributed DP (DP and secure aggregation together, docs/THREAT-MODEL.md):

    - `dp_noise_shares`: m > 0 splits the Gaussian noise: each site adds N(0, (z C)^2 / m), so
      the sum of any m honest shares carries the full N(0, (z C)^2) the accountant assumes,
      and every model block must aggregate at least m updates (`dp-noise-shares`). Only the
      sum is ever visible, so a site's own share need not protect it alone. The guarantee holds
      while at least m of a block's included trainers add their share honestly: a consortium
      that assumes t colluders sets m = trainers - t. 0: every site adds the full noise.
    """

    clip_norm: float = 0.0
    noise_multiplier: float = 0.0
    delta: float = 1e-5
    epsilon_budget: float = 0.0
    secure_aggregation: bool = False
    secagg_neighbours: int = 0
    secagg_threshold: int = 0
    secagg_clip_range: float = 8.0
    secagg_quant_range: int = 2**22
    secagg_modulus_bits: int = 32
    dp_noise_shares: int = 0

    @property
    def dp_enabled(self) -> bool:
        """True when sites clip and noise their updates (and receipts account epsilon)."""
        return self.clip_norm > 0

    @property
    def site_noise_multiplier(self) -> float:
        """The noise multiplier of one site's share: z, or z / sqrt(m) with distributed DP."""
        shares = self.dp_noise_shares
        return self.noise_multiplier / shares**0.5 if shares > 0 else self.noise_multiplier
