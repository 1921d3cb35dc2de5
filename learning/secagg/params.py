"""The public parameters of secure aggregation, as the genesis declares them.

Defaults follow the mainstream SecAgg+ deployment (Flower's `secaggplus` workflow): a clipping
range of 8.0 per coordinate, a quantisation range of 2^22 and a modulus of 2^32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class SecAggError(ValueError):
    """The protocol cannot go on: too few shares, a malformed message, an inconsistent input.

    `reason` is a short stable name for rejections and carry-over blocks.
    """

    def __init__(self, message: str, reason: str = "secagg-invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SecAggParams:
    """Quantisation, modulus, neighbourhood degree and Shamir threshold of one consortium.

    `neighbours` 0 pairs every trainer with every other (Bonawitz et al. 2017); k > 0 pairs each
    with k neighbours of a public pseudo-random k-regular graph (SecAgg+, Bell et al. 2020).
    `threshold` 0 means a majority of each trainer's share holders (its neighbours and itself).
    """

    clip_range: float = 8.0
    quant_range: int = 1 << 22
    modulus_bits: int = 32
    neighbours: int = 0
    threshold: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_range) and self.clip_range > 0):
            raise SecAggError("secure aggregation clip range must be a positive number")
        if not 1 <= self.modulus_bits <= 32:
            raise SecAggError("secure aggregation modulus must be 2^1 .. 2^32")
        if not 2 <= self.quant_range < self.modulus:
            raise SecAggError("secure aggregation quantisation range must be in [2, modulus)")
        if self.neighbours < 0 or self.threshold < 0:
            raise SecAggError("secure aggregation neighbours and threshold must be >= 0")

    @property
    def modulus(self) -> int:
        """The ring the masked vectors live in: 2^modulus_bits."""
        return 1 << self.modulus_bits

    def max_summands(self) -> int:
        """How many quantised updates can be summed before the sum wraps the modulus."""
        return (self.modulus - 1) // (self.quant_range - 1)

    def threshold_for(self, holders: int) -> int:
        """The Shamir threshold of a trainer whose secrets have `holders` share holders."""
        if holders < 2:
            raise SecAggError("secure aggregation needs at least two participants")
        t = self.threshold or holders // 2 + 1
        if t > holders:
            raise SecAggError(
                f"secure aggregation threshold {t} exceeds the {holders} holders of a trainer's shares"
            )
        return t


def secagg_plus_degree(n: int) -> int:
    """The SecAgg+ neighbourhood size for n trainers: 2 ceil(log2 n), at most n - 1."""
    if n < 2:
        return 0
    return min(n - 1, 2 * math.ceil(math.log2(n)))
