"""Vote bookkeeping for one height with lazy, batched signature verification.

One vote counts per (validator, round, type) (rule 13 of consensus/tendermint.py). A vote arrives
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
from collections.abc import Callable, Collection, Iterator, Sequence

from consensus.admission import BAD_SIGNATURE, Admission
from consensus.crypto import batch_verify_same_message
from consensus.events import Action, Rejected, ReportEvidence
from consensus.signing import vote_bytes
from consensus.types import (
    Evidence,
    Hash,
    Round,
    ValidatorIndex,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet
from consensus.validity import make_evidence

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


Offence = tuple[int, int, int, int]
"""(validator, height, round, vote type): what one piece of evidence punishes, once."""


class EvidencePool:
    """Equivocations this node saw and the chain has not punished yet, across heights.

    A proposer puts the oldest of them into its block (`for_block`); once a committed block
    punished an offence, `prune` forgets it.
    """

    def __init__(self) -> None:
        self._by_offence: dict[Offence, Evidence] = {}

    def add(self, evidence: Evidence, punished: Collection[Offence], out: list[Action]) -> None:
        """Keep new evidence and report it to the node (once per offence)."""
        key = evidence.offence
        if key not in self._by_offence and key not in punished:
            self._by_offence[key] = evidence
            out.append(ReportEvidence(evidence))

    def for_block(self, punished: Collection[Offence], limit: int) -> tuple[Evidence, ...]:
        """At most `limit` unpunished pieces of evidence, oldest offence first."""
        pending = (e for k, e in sorted(self._by_offence.items()) if k not in punished)
        return tuple(pending)[:limit]

    def prune(self, punished: Collection[Offence]) -> None:
        """Forget the offences a committed block punished."""
        self._by_offence = {k: e for k, e in self._by_offence.items() if k not in punished}


class VoteLog:
    """Every prevote and precommit of one height: Algorithm 1's message log for votes.

    Votes are admitted by the caller (member, round window); the log counts them, spots
    equivocation, and answers the threshold questions of the upon-rules, verifying pending
    votes only when they could tip an answer. Bad signatures found on the way are reported as
    `Rejected` actions.
    """

    def __init__(
        self,
        validator_set: ValidatorSet,
        admission: Admission,
        evidence: EvidencePool,
        punished: Collection[Offence],
    ) -> None:
        self._validators = validator_set
        self._admission = admission
        self._evidence = evidence
        self._punished = frozenset(punished)
        self._sets: dict[tuple[int, VoteType], VoteSet] = {}
        self.rounds: set[int] = set()
        """Rounds with a vote set (Algorithm 1 line 55 looks for the highest ones)."""

    def get(self, round_: int, vote_type: VoteType) -> VoteSet | None:
        """The votes of one round and type, if any arrived."""
        return self._sets.get((round_, vote_type))

    def open(self, round_: int, vote_type: VoteType) -> VoteSet:
        """The votes of one round and type, created empty on first use."""
        key = (round_, vote_type)
        vs = self._sets.get(key)
        if vs is None:
            vs = self._sets[key] = VoteSet(vote_type, Round(round_))
            self.rounds.add(round_)
        return vs

    def precommit_sets(self) -> Iterator[VoteSet]:
        """Precommit sets, by round."""
        for (_, vote_type), vs in sorted(self._sets.items()):
            if vote_type == VoteType.PRECOMMIT:
                yield vs

    def add_own(self, vote: Vote) -> None:
        """Count a vote this node just signed."""
        vs = self.open(vote.round, vote.vote_type)
        if vs.get(vote.validator) is None:
            vs.add_verified(vote, self._validators.power(vote.validator))

    def add(self, vote: Vote, out: list[Action]) -> bool:
        """Log an admitted vote, pending verification; True when it may change what the rules
        see (False for a repeat)."""
        vs = self.open(vote.round, vote.vote_type)
        power = self._validators.power(vote.validator)
        known = vs.get(vote.validator)
        if known is None:
            vs.add_pending(vote, power)
        elif known.block_hash != vote.block_hash:
            if vote.block_hash in vs.conflicting.get(vote.validator, {}):
                return False  # a repeat of a known conflicting vote
            self._conflict(vs, known, vote, out)
        elif known.signature != vote.signature and vote.validator in vs.pending:
            # same value, other signature: one of them is a forgery; keep the one that verifies
            if self._admission.signature_ok(known):
                return False
            vs.drop_pending(vote.validator, power)
            vs.add_pending(vote, power)
        else:
            return False  # a repeat of a counted vote
        return True

    def _conflict(self, vs: VoteSet, known: Vote, vote: Vote, out: list[Action]) -> None:
        """A second vote of a validator at one (round, type): evidence if both verify."""
        if not self._admission.signature_ok(vote):
            out.append(Rejected(BAD_SIGNATURE, "vote with a bad signature"))
            return
        power = self._validators.power(vote.validator)
        if vote.validator in vs.pending and not self._admission.signature_ok(known):
            vs.drop_pending(vote.validator, power)  # the counted one was a forgery
            vs.add_pending(vote, power)
            return
        vs.add_conflicting(vote, power)
        self._evidence.add(make_evidence(known, vote), self._punished, out)

    # -- thresholds ----------------------------------------------------------------------------

    def quorum_for(
        self, round_: int, vote_type: VoteType, value: Hash | None, out: list[Action]
    ) -> bool:
        """2f+1 verified votes for `value`; verifies pending ones only if they could tip it."""
        vs = self._sets.get((round_, vote_type))
        if vs is None:
            return False
        has_quorum = self._validators.has_quorum
        if has_quorum(vs.power_for(value, verified_only=True)):
            return True
        if has_quorum(vs.power_for(value, verified_only=False)):
            self._verify(vs, lambda v: v == value, out)
            return has_quorum(vs.power_for(value, verified_only=True))
        return False

    def quorum_any(self, round_: int, vote_type: VoteType, out: list[Action]) -> bool:
        """2f+1 verified votes of any value (lines 34 and 47)."""
        vs = self._sets.get((round_, vote_type))
        if vs is None:
            return False
        has_quorum = self._validators.has_quorum
        if has_quorum(vs.verified_total):
            return True
        if has_quorum(vs.verified_total + vs.pending_total):
            self._verify(vs, lambda v: True, out)
            return has_quorum(vs.verified_total)
        return False

    def senders(self, round_: int, *, verified_only: bool) -> set[ValidatorIndex]:
        """Validators with a prevote or precommit in `round_`."""
        senders: set[ValidatorIndex] = set()
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vs = self._sets.get((round_, vote_type))
            if vs is not None:
                senders |= vs.senders(verified_only=verified_only)
        return senders

    def verify_round(self, round_: int, out: list[Action]) -> None:
        """Verify every pending vote of `round_`."""
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vs = self._sets.get((round_, vote_type))
            if vs is not None:
                self._verify(vs, lambda v: True, out)

    def _verify(
        self, vs: VoteSet, value_filter: Callable[[Hash | None], bool], out: list[Action]
    ) -> None:
        for _ in vs.verify_pending(value_filter, self._verify_batch, self._validators.power):
            out.append(Rejected(BAD_SIGNATURE, "vote with a bad signature"))

    def _verify_batch(self, votes: Sequence[Vote]) -> list[bool]:
        """One aggregate check: the votes of one value share their sign-bytes."""
        admission = self._admission
        message = vote_bytes(admission.chain_id, votes[0])
        keys = [self._validators.public_keys[v.validator] for v in votes]
        signatures = [v.signature for v in votes]
        return batch_verify_same_message(admission.verifier, keys, message, signatures)
