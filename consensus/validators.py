"""Validator set: voting power, quorum thresholds, proposer selection, signer bitfields.

Quorum is strictly more than 2/3 of the total voting power (Algorithm 1's "2f + 1" read as
power, docs/ARCHITECTURE.md), "f + 1" is strictly more than 1/3. Comparisons are done in integers
(3 * power > 2 * total), never in floats.

Proposer selection is a smooth weighted round-robin (as nginx's and, in spirit, CometBFT's
proposer priority): over one cycle of length sum(power) / gcd(powers) each validator proposes
`power / gcd` times, spread evenly. `proposer_for(height, round)` indexes that cycle at
`height + round`, so it is a pure function every node computes identically.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from consensus.types import (
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    Height,
    PublicKey,
    Round,
    ValidatorIndex,
    ValidatorInfo,
)

MAX_CYCLE = 20_000


class ValidatorSet:
    """The genesis members with their power; only `validator`-role members with power vote."""

    def __init__(self, members: Sequence[ValidatorInfo]) -> None:
        if not members:
            raise ValueError("the validator set is empty")
        self.members: tuple[ValidatorInfo, ...] = tuple(members)
        self.powers: tuple[int, ...] = tuple(
            m.power if ROLE_VALIDATOR in m.roles else 0 for m in self.members
        )
        if any(p < 0 for p in self.powers):
            raise ValueError("negative voting power")
        self.total_power = sum(self.powers)
        if self.total_power <= 0:
            raise ValueError("no validator has voting power")
        self.public_keys: tuple[PublicKey, ...] = tuple(m.public_key for m in self.members)
        self.trainers: tuple[ValidatorIndex, ...] = tuple(
            ValidatorIndex(i) for i, m in enumerate(self.members) if ROLE_TRAINER in m.roles
        )
        self._trainer_set = frozenset(self.trainers)
        self._cycle = _smooth_weighted_cycle(self.powers)

    def __len__(self) -> int:
        return len(self.members)

    def power(self, index: int) -> int:
        """Voting power of member `index` (0 for non-validators and unknown indices)."""
        if 0 <= index < len(self.powers):
            return self.powers[index]
        return 0

    def is_validator(self, index: int) -> bool:
        """True when the member votes."""
        return self.power(index) > 0

    def is_trainer(self, index: int) -> bool:
        """True when the member contributes updates."""
        return index in self._trainer_set

    def has_quorum(self, power: int) -> bool:
        """Strictly more than 2/3 of the total power."""
        return 3 * power > 2 * self.total_power

    def quorum_peers(self) -> int:
        """How many other validators (largest first) a validator of the largest power must
        reach to hold more than 2/3 of the power together (what a node needs connected)."""
        powers = sorted(
            (p for i in range(len(self.members)) if (p := self.power(i)) > 0), reverse=True
        )
        have, peers = (powers[0] if powers else 0), 0
        for power in powers[1:]:
            if self.has_quorum(have):
                break
            have += power
            peers += 1
        return peers

    def has_one_third(self, power: int) -> bool:
        """Strictly more than 1/3 of the total power (f + 1)."""
        return 3 * power > self.total_power

    def power_of(self, indices: Iterable[int]) -> int:
        """Total power of distinct indices."""
        return sum(self.power(i) for i in set(indices))

    def proposer_for(self, height: Height, round_: Round) -> ValidatorIndex:
        """The proposer of (height, round), identical on every node."""
        return self._cycle[(height + round_) % len(self._cycle)]

    # -- bitfields ---------------------------------------------------------------------------

    @property
    def bitfield_size(self) -> int:
        """ceil(n / 8) bytes."""
        return (len(self.members) + 7) // 8

    def bitfield(self, indices: Iterable[int]) -> bytes:
        """Bit i set for each member index i (duplicates collapse by construction)."""
        bits = bytearray(self.bitfield_size)
        for i in indices:
            if not 0 <= i < len(self.members):
                raise ValueError(f"member index {i} out of range")
            bits[i // 8] |= 1 << (i % 8)
        return bytes(bits)

    def indices(self, bitfield: bytes) -> list[ValidatorIndex] | None:
        """Members whose bit is set, or None when the bitfield is malformed."""
        if len(bitfield) != self.bitfield_size:
            return None
        out = [
            ValidatorIndex(i) for i in range(len(self.members)) if bitfield[i // 8] & (1 << (i % 8))
        ]
        spare = len(self.members) % 8
        if spare and bitfield[-1] >> spare:
            return None  # bits set beyond the last member
        return out


def _smooth_weighted_cycle(powers: Sequence[int]) -> tuple[ValidatorIndex, ...]:
    voting = [(i, p) for i, p in enumerate(powers) if p > 0]
    g = 0
    for _, p in voting:
        g = math.gcd(g, p)
    weights = [(i, p // g) for i, p in voting]
    total = sum(w for _, w in weights)
    if total > MAX_CYCLE:
        raise ValueError("voting powers too fine-grained for the proposer cycle; use smaller units")
    current = {i: 0 for i, _ in weights}
    cycle: list[ValidatorIndex] = []
    for _ in range(total):
        for i, w in weights:
            current[i] += w
        best = max(weights, key=lambda iw: (current[iw[0]], -iw[0]))[0]
        current[best] -= total
        cycle.append(ValidatorIndex(best))
    return tuple(cycle)
