"""Vote bookkeeping for one height with lazy, batched signature verification.

One vote counts per (validator, round, type) (DESIGN.md "The consensus core"). A vote arrives
*pending*: it is stored and its power counted as "potential", but not trusted. When a threshold
check of Algorithm 1 (more than 2/3, or more than 1/3) could flip only with the pending votes,
those votes are verified in one batch per message (one aggregate pairing check; per-signature
only if the batch fails, to find and drop the bad ones). Votes that can no longer change any
outcome are never verified at all. This is what keeps n = 100 under 100 ms of CPU per height.

Equivocation: totals "of any value" count one vote per validator (the first), but the power for
one *value* counts every validator that signed a vote for that value, conflicting votes
included (CometBFT's VoteSet does the same through peer maj23 claims). This is safe, since two
quorums of signers still share more than 1/3 of the power, so an honest signer would have to
sign both; and it is needed for liveness: otherwise an equivocator that showed its vote for v to
some honest nodes and its vote for v' to others can keep a polka for v forever invisible to
part of the honest nodes, and a validator locked on v never gets them to prevote it.
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
        # verified votes that conflict with a validator's counted vote, by validator and value
        self.conflicting: dict[ValidatorIndex, dict[Hash | None, Vote]] = {}
        self.conflicting_power: defaultdict[Hash | None, int] = defaultdict(int)

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

    def add_conflicting(self, vote: Vote, power: int, *, limit: int = 4) -> bool:
        """Record a verified vote that conflicts with the validator's counted one."""
        counted = self.get(vote.validator)
        if counted is None or counted.block_hash == vote.block_hash:
            return False
        others = self.conflicting.setdefault(vote.validator, {})
        if vote.block_hash in others or len(others) >= limit:
            return False
        others[vote.block_hash] = vote
        self.conflicting_power[vote.block_hash] += power
        return True

    def power_for(self, value: Hash | None, *, verified_only: bool) -> int:
        """Power of every validator that signed a vote for `value` (conflicting ones included)."""
        power = self.verified_power[value] + self.conflicting_power[value]
        return power if verified_only else power + self.pending_power[value]

    def votes_for(self, value: Hash | None) -> list[Vote]:
        """Verified votes for `value`, one per validator, by validator index."""
        votes = {i: v for i, v in self.verified.items() if v.block_hash == value}
        for i, others in self.conflicting.items():
            if value in others and i not in votes:
                votes[i] = others[value]
        return [votes[i] for i in sorted(votes)]

    def values(self) -> set[Hash | None]:
        """Every value with a vote, verified, pending or conflicting."""
        return set(self.verified_power) | set(self.pending_power) | set(self.conflicting_power)

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
