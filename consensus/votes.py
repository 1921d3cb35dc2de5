"""Vote bookkeeping for one height with lazy, batched signature verification.

One vote counts per (validator, round, type) (DESIGN.md "The consensus core"). A vote arrives
*pending*: it is stored and its power counted as "potential", but not trusted. When a threshold
check of Algorithm 1 (more than 2/3, or more than 1/3) could flip only with the pending votes,
those votes are verified in one batch per message (one aggregate pairing check; per-signature
only if the batch fails, to find and drop the bad ones). Votes that can no longer change any
outcome are never verified at all. This is what keeps n = 100 under 100 ms of CPU per height.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from consensus.types import Hash, Round, ValidatorIndex, Vote, VoteType

# verify(votes of one message) -> one flag per vote
BatchVerify = Callable[[Sequence[Vote]], list[bool]]


class VoteSet:
    """Votes of one (height, round, type): verified and pending, with power per value."""

    def __init__(self, vote_type: VoteType, round_: Round) -> None:
        self.vote_type = vote_type
        self.round = round_
        self.verified: dict[ValidatorIndex, Vote] = {}
        self.pending: dict[ValidatorIndex, Vote] = {}
        self.verified_power: defaultdict[Hash | None, int] = defaultdict(int)
        self.pending_power: defaultdict[Hash | None, int] = defaultdict(int)
        self.verified_total = 0
        self.pending_total = 0

    def get(self, validator: ValidatorIndex) -> Vote | None:
        """The vote counted for `validator`, verified or not."""
        return self.verified.get(validator) or self.pending.get(validator)

    def add_verified(self, vote: Vote, power: int) -> None:
        """Count a vote known to be authentic (our own, or just verified)."""
        self.verified[vote.validator] = vote
        self.verified_power[vote.block_hash] += power
        self.verified_total += power

    def add_pending(self, vote: Vote, power: int) -> None:
        """Store a vote whose signature has not been checked yet."""
        self.pending[vote.validator] = vote
        self.pending_power[vote.block_hash] += power
        self.pending_total += power

    def drop_pending(self, validator: ValidatorIndex, power: int) -> Vote | None:
        """Forget a pending vote (its signature was bad)."""
        vote = self.pending.pop(validator, None)
        if vote is not None:
            self.pending_power[vote.block_hash] -= power
            self.pending_total -= power
        return vote

    def verify_pending(
        self,
        value_filter: Callable[[Hash | None], bool],
        verify: BatchVerify,
        power_of: Callable[[int], int],
    ) -> list[Vote]:
        """Verify the pending votes whose value passes the filter; return the bad ones."""
        groups: dict[Hash | None, list[Vote]] = defaultdict(list)
        for vote in self.pending.values():
            if value_filter(vote.block_hash):
                groups[vote.block_hash].append(vote)
        bad: list[Vote] = []
        for votes in groups.values():
            for vote, ok in zip(votes, verify(votes), strict=True):
                power = power_of(vote.validator)
                self.drop_pending(vote.validator, power)
                if ok:
                    self.add_verified(vote, power)
                else:
                    bad.append(vote)
        return bad

    def senders(self, *, verified_only: bool) -> set[ValidatorIndex]:
        """Validators with a vote here."""
        if verified_only:
            return set(self.verified)
        return set(self.verified) | set(self.pending)
