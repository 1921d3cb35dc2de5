"""Tendermint's Algorithm 1 for one height: StartRound, the upon-rules and the timeouts.

Follows Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus" (arXiv:1807.04938v3),
Algorithm 1. "2f + 1" reads "more than 2/3 of the voting power", "f + 1" "more than 1/3".
Rules as implemented, with the paper's line numbers and the code that implements each:

 1. (l. 2-9)   Per height: round, step, lockedValue/lockedRound = nil/-1, validValue/validRound
               = nil/-1, an empty message log: a fresh `Tendermint`. Height h starts after block
               h-1 is committed (`ConsensusCore._start_height`).
 2. (l. 11-21) StartRound(r) (`start_round`): step = propose. The proposer of (h, r) proposes
               validValue with validRound when it has one; otherwise getValue() is the learning
               round (`ValueSource`, consensus/learning_round.py), and the proposal follows when
               it completes. Every node, the proposer too, schedules timeoutPropose(h, r) (the
               paper's proposer proposes synchronously; ours may wait for learning, and must not
               wait forever).
 3. (l. 22-27) ⟨PROPOSAL, h, r, v, -1⟩ in step propose: prevote id(v) if valid(v) and
               (lockedRound = -1 or lockedValue = v), else nil; step = prevote (`_upon_proposal`).
 4. (l. 28-33) ⟨PROPOSAL, h, r, v, vr⟩ with 0 <= vr < r and 2f+1 prevotes for id(v) in round vr,
               in step propose: prevote id(v) if valid(v) and (lockedRound <= vr or
               lockedValue = v), else nil; step = prevote (`_upon_proposal`).
 5. (l. 34-35) 2f+1 prevotes of any value in round r, step prevote, first time: schedule
               timeoutPrevote(h, r) (`_upon_prevotes_any`).
 6. (l. 36-43) Proposal v of round r, 2f+1 prevotes for id(v), valid(v), step >= prevote, first
               time: if step = prevote, lock v and precommit id(v), step = precommit; in either
               case validValue = v, validRound = r (so also in step precommit) (`_upon_polka`).
 7. (l. 44-46) 2f+1 prevotes for nil, step prevote: precommit nil, step = precommit. A nil polka
               never unlocks (`_upon_nil_polka`).
 8. (l. 47-48) 2f+1 precommits of any value in round r, first time: schedule
               timeoutPrecommit(h, r) (`_upon_precommits_any`).
 9. (l. 49-54) A proposal v for any round r of this height, 2f+1 precommits for id(v) in r,
               valid(v): decide v (`_upon_commit_quorum` records the `Decision`; the core emits
               Commit with the aggregated precommits and moves to h+1). We accept v from any of
               this height's proposals whose block hashes to id(v).
10. (l. 55-56) f+1 distinct validators' messages for a round > current round: StartRound(that
               round) (`_upon_later_round`).
11. (l. 57-67) OnTimeoutPropose/Prevote/Precommit(h, r) act only if (h, r[, step]) is still the
               current one: prevote nil / precommit nil / StartRound(r+1) (`on_timeout`). Stale
               timeouts are ignored. Timeouts grow linearly: base + r * delta.
12. Messages for the next two heights are buffered and replayed when the height starts;
    messages from f+1 of the power at later heights make the core ask the node for block sync
    (again every timeoutPropose while it lasts) (`ConsensusCore._buffer_event`, `_note_ahead`).
13. One vote per (validator, round, type) counts towards "any value" totals (rules 5, 8, 10);
    a second, different one is equivocation evidence and still counts towards its own value's
    2f+1 (rules 4, 6, 7, 9): two quorums of signers share >1/3 of the power either way, and an
    equivocator cannot hide a polka from part of the honest nodes (`consensus.votes.VoteLog`).
14. A re-proposal (vr >= 0) carries the round-vr prevotes it relies on, aggregated into one BLS
    signature and a bitfield (Proposal.polka, a `PolkaCertificate`: its size does not grow with
    the prevotes),
    the gossip guarantee of the paper made explicit: a node that missed them can apply rule 4
    (`_propose`, `on_proposal`).
15. The lock (lockedRound, id(lockedValue)) is persisted with the signer guard state, so a
    validator restarted within a height stays locked (`_upon_polka`, `restore_lock`).

Observers (me=None) and trainer-only members follow the same rules and decide, but never vote.
Messages reach this machine admitted by `consensus.admission` (member, round window, the
round's proposer, valid round; signatures are checked here: one at a time for proposals, in
batches for votes, see `consensus.votes`). Refusals are `Rejected` actions, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from consensus.admission import BAD_SIGNATURE
from consensus.codec import block_hash
from consensus.context import Context
from consensus.errors import BAD_POLKA, INVALID_BLOCK, UNTIMELY_PROPOSAL, refusal
from consensus.events import Action, Broadcast, Rejected, ScheduleTimeout, TimeoutFired
from consensus.invalid_proposal import invalid_proposal_evidence
from consensus.privacy import problem_reason
from consensus.signing import vote_sign_bytes
from consensus.types import (
    Block,
    CommitCertificate,
    Hash,
    Height,
    PolkaCertificate,
    Proposal,
    Round,
    Step,
    ValidatorIndex,
    Vote,
    VoteType,
)
from consensus.validity import Parent, proposal_evidence
from consensus.votes import VoteLog, VoteSet

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


@dataclass(frozen=True, slots=True)
class Decision:
    """decision_p[h] = v (line 51): the block, its hash and the 2f+1 precommits for it."""

    block: Block
    block_hash: Hash
    certificate: CommitCertificate


class ValueSource(Protocol):
    """getValue() of line 18, and what timeoutPropose must allow for it: the learning round."""

    def enter_round(self, round_: Round) -> None:
        """StartRound(round_) began: whatever getValue() did for an earlier round is void."""
        ...

    def propose_allowance(self, now: float) -> float:
        """Seconds timeoutPropose waits on top of its base: what getValue() may still take."""
        ...

    def get_value(self, round_: Round, now: float, out: list[Action]) -> Block | None:
        """Begin getValue() as the proposer of `round_`; the value if it is ready at once."""
        ...

    def proposed(self) -> None:
        """This node's proposal of the current round was signed and broadcast."""
        ...


class Tendermint:
    """Algorithm 1 for one height (rule 1): round state, the message log and the rules.

    The core creates one per height and routes the height's votes, proposals and consensus
    timeouts to it. Once `decision` is set the machine is inert: the core commits the block
    and starts a new one for the next height.
    """

    def __init__(self, height: Height, parent: Parent, ctx: Context, values: ValueSource) -> None:
        self.height = height
        self.round = Round(0)
        self.step = Step.PROPOSE
        self.locked_value: Block | None = None
        self.locked_hash: Hash | None = None
        self.locked_round = -1
        self.valid_value: Block | None = None
        self.valid_round = -1
        self.decision: Decision | None = None
        self._parent = parent
        self._ctx = ctx
        self._values = values
        self._votes = VoteLog(
            ctx.validator_set, ctx.admission, ctx.evidence, parent.ledger.punished
        )
        self._proposals: dict[int, tuple[Proposal, Hash]] = {}
        self._received_at: dict[int, float] = {}  # round -> when a peer's proposal arrived
        self._blocks: dict[Hash, Block] = {}
        self._valid_cache: dict[Hash, bool] = {}
        self._prevote_timeout_done: set[int] = set()
        self._precommit_timeout_done: set[int] = set()
        self._polka_done: set[int] = set()
        self._certified_polkas: set[tuple[int, Hash]] = set()  # (round, block) of a valid cert

    def restore_lock(self, locked_round: int, locked_hash: Hash) -> None:
        """Rule 15: a validator restarted within a height keeps its lock (the value itself
        arrives again by gossip)."""
        self.locked_round = locked_round
        self.locked_hash = locked_hash

    def adopt(self, decision: Decision) -> None:
        """A block the network decided, proven by its commit certificate (block sync)."""
        self.decision = decision

    # -- StartRound and proposing ------------------------------------------------------------

    def start_round(self, round_: Round, now: float, out: list[Action]) -> None:
        """Rule 2, lines 11-21: StartRound(round_)."""
        self.round = round_
        self.step = Step.PROPOSE
        self._values.enter_round(round_)
        t = self._ctx.timeouts
        delay = self._values.propose_allowance(now) + t.propose + round_ * t.propose_delta
        out.append(ScheduleTimeout(self.height, round_, Step.PROPOSE, delay))
        ctx = self._ctx
        if ctx.can_vote and ctx.validator_set.proposer_for(self.height, round_) == ctx.me:
            if self.valid_value is not None:
                self._propose(self.valid_value, Round(self.valid_round), out)
            else:
                value = self._values.get_value(round_, now, out)
                if value is not None:
                    self.propose_value(value, now, out)
        self.progress(now, out)

    def propose_value(self, block: Block, now: float, out: list[Action]) -> None:
        """getValue() returned `block` (line 18): propose it with vr = -1, apply the rules."""
        self._propose(block, Round(-1), out)
        self.progress(now, out)

    def _propose(self, block: Block, valid_round: Round, out: list[Action]) -> None:
        """Line 19: broadcast ⟨PROPOSAL, h, r, v, vr⟩ (with the round-vr polka, rule 14)."""
        bhash = block_hash(block)
        polka = None
        prevotes = self._votes.get(valid_round, PV) if valid_round >= 0 else None
        if prevotes is not None:
            votes = prevotes.votes_for(bhash)  # verified only: the aggregate verifies
            polka = PolkaCertificate(
                round=valid_round,
                signers=self._ctx.validator_set.bitfield(v.validator for v in votes),
                aggregate_signature=self._ctx.verifier.aggregate([v.signature for v in votes]),
            )
        proposal = self._ctx.signatory.sign_proposal(
            self.height, self.round, block, bhash, valid_round, polka, out
        )
        if proposal is None:
            return
        out.append(Broadcast(proposal))
        self._values.proposed()
        if self.round not in self._proposals:
            self._store_proposal(proposal, bhash)

    def _cast(self, vote_type: VoteType, value: Hash | None, out: list[Action]) -> None:
        """Sign and broadcast a vote (validators only; the guard may refuse)."""
        if not self._ctx.can_vote:
            return
        vote = self._ctx.signatory.sign_vote(vote_type, self.height, self.round, value, out)
        if vote is not None:
            out.append(Broadcast(vote))
            self._votes.add_own(vote)

    # -- messages ------------------------------------------------------------------------------

    def on_vote(self, vote: Vote, now: float, out: list[Action]) -> None:
        """A prevote or precommit of this height."""
        if self._add_vote(vote, out):
            self.progress(now, out)

    def _add_vote(self, vote: Vote, out: list[Action]) -> bool:
        """Admit and log a vote; True when it may change what the rules see."""
        reason = self._ctx.admission.vote(
            vote, current_height=self.height, current_round=self.round, verify=False
        )
        if reason is not None:
            out.append(refusal("vote", reason))
            return False
        return self._votes.add(vote, out)

    def on_proposal(self, proposal: Proposal, now: float, out: list[Action]) -> None:
        """A proposal of this height: the first one per round counts (a second one is the
        proposer's fault); its signature is checked only then."""
        admission = self._ctx.admission
        reason = admission.proposal(
            proposal, current_height=self.height, current_round=self.round, verify=False
        )
        if reason is not None:
            out.append(refusal("proposal", reason))
            return
        if proposal.round in self._proposals:
            self._second_proposal(proposal, out)
            return
        bhash = block_hash(proposal.block)
        if not admission.signature_ok(proposal, block_hash=bhash):
            out.append(Rejected(BAD_SIGNATURE, "proposal with a bad signature"))
            return
        self._store_proposal(proposal, bhash)
        self._received_at[proposal.round] = now
        invalid = invalid_proposal_evidence(proposal, self._ctx.genesis)
        if invalid is not None:  # valid(v) refuses it too; this makes it cost the proposer
            self._ctx.evidence.add(invalid, self._parent.ledger.punished, out)
        if proposal.valid_round >= 0 and proposal.polka is not None:
            problem = self._polka_problem(proposal.polka, proposal.valid_round, bhash)
            if problem is None:
                self._certified_polkas.add((proposal.valid_round, bhash))
            else:  # our own prevotes of that round may still show the polka
                out.append(Rejected(BAD_POLKA, f"re-proposal with a bad polka: {problem}"))
        self.progress(now, out)

    def _second_proposal(self, proposal: Proposal, out: list[Action]) -> None:
        """Another proposal of a round we hold one for: signed and conflicting, it is evidence
        (docs/THREAT-MODEL.md "Evidence that costs nothing"); the first one still counts."""
        first, first_hash = self._proposals[proposal.round]
        bhash = block_hash(proposal.block)
        evidence = proposal_evidence(first, first_hash, proposal, bhash)
        if evidence is None:
            return
        if not self._ctx.admission.signature_ok(proposal, block_hash=bhash):
            out.append(Rejected(BAD_SIGNATURE, "proposal with a bad signature"))
            return
        self._ctx.evidence.add(evidence, self._parent.ledger.punished, out)

    def _polka_problem(self, polka: PolkaCertificate, valid_round: int, bhash: Hash) -> str | None:
        """Why `polka` does not prove >2/3 round-`valid_round` prevotes for `bhash`, or None."""
        vset = self._ctx.validator_set
        if polka.round != valid_round:
            return f"certificate for round {polka.round}, not the valid round {valid_round}"
        signers = vset.indices(polka.signers)
        if signers is None:
            return "malformed signer bitfield"
        if not vset.has_quorum(vset.power_of(signers)):
            return "signers without a quorum of power"
        message = vote_sign_bytes(self._ctx.chain_id, PV, self.height, Round(valid_round), bhash)
        keys = [vset.public_keys[i] for i in signers]
        if not self._ctx.verifier.verify_same_message(keys, message, polka.aggregate_signature):
            return "aggregate signature does not verify"
        return None

    def _store_proposal(self, proposal: Proposal, bhash: Hash) -> None:
        self._proposals[proposal.round] = (proposal, bhash)
        self._blocks[bhash] = proposal.block

    def _valid(self, bhash: Hash, out: list[Action]) -> bool:
        """Algorithm 1's valid(v), cached per block hash."""
        cached = self._valid_cache.get(bhash)
        if cached is None:
            problem = self._ctx.checker.block_problem(self._blocks[bhash], self._parent)
            if problem:
                reason = problem_reason(problem, INVALID_BLOCK)
                out.append(Rejected(reason, f"invalid block: {problem}"))
            cached = self._valid_cache[bhash] = problem is None
        return cached

    def _timely(self, round_: int, out: list[Action]) -> bool:
        """Proposer-based timestamps (CometBFT PBTS): a fresh proposal's block time is within
        the genesis precision and message delay of our clock when it arrived. Only fresh
        proposals are checked; a re-proposal's polka shows >2/3 found it timely. Our own
        proposal is timely by construction. Without this a proposer could stamp a time so far
        ahead that no later block can follow it (docs/THREAT-MODEL.md "Halt by timestamp")."""
        received = self._received_at.get(round_)
        if received is None:
            return True
        g = self._ctx.genesis.safeguards
        time_ms = self._proposals[round_][0].block.header.time_ms
        clock_ms = int(received * 1000)
        earliest = clock_ms - g.message_delay_ms - g.timestamp_precision_ms
        if earliest <= time_ms <= clock_ms + g.timestamp_precision_ms:
            return True
        out.append(
            Rejected(
                UNTIMELY_PROPOSAL,
                f"untimely proposal: block time {time_ms} ms, our clock {clock_ms} ms",
            )
        )
        return False

    # -- the upon-rules ------------------------------------------------------------------------

    def progress(self, now: float, out: list[Action]) -> None:
        """Apply every enabled upon-rule until none fires (the order does not matter).

        Each rule fires at most once per call and says whether it did. Thresholds are checked
        on verified votes only; pending votes are batch-verified when they could tip one.
        """
        while self.decision is None:
            if self._upon_commit_quorum(out):
                return
            fired = (
                self._upon_later_round(now, out)
                or self._upon_proposal(out)
                or self._upon_prevotes_any(out)
                or self._upon_polka(out)
                or self._upon_nil_polka(out)
                or self._upon_precommits_any(out)
            )
            if not fired:
                return

    def _upon_proposal(self, out: list[Action]) -> bool:
        """Rules 3 and 4, lines 22-33."""
        if self.step != Step.PROPOSE or self.round not in self._proposals:
            return False
        proposal, bhash = self._proposals[self.round]
        vr = proposal.valid_round
        locked_hash = self.locked_hash
        if vr == -1:
            ok = (
                self._timely(self.round, out)
                and self._valid(bhash, out)
                and (self.locked_round == -1 or locked_hash == bhash)
            )
        elif vr < self.round and (
            (vr, bhash) in self._certified_polkas or self._votes.quorum_for(vr, PV, bhash, out)
        ):
            ok = self._valid(bhash, out) and (self.locked_round <= vr or locked_hash == bhash)
        else:
            return False
        self._cast(PV, bhash if ok else None, out)
        self.step = Step.PREVOTE
        return True

    def _upon_prevotes_any(self, out: list[Action]) -> bool:
        """Rule 5, lines 34-35."""
        r = self.round
        if self.step != Step.PREVOTE or r in self._prevote_timeout_done:
            return False
        if not self._votes.quorum_any(r, PV, out):
            return False
        self._prevote_timeout_done.add(r)
        t = self._ctx.timeouts
        delay = t.prevote + r * t.prevote_delta
        out.append(ScheduleTimeout(self.height, self.round, Step.PREVOTE, delay))
        return True

    def _upon_polka(self, out: list[Action]) -> bool:
        """Rule 6, lines 36-43 (and rule 15: the lock is persisted)."""
        r = self.round
        if self.step < Step.PREVOTE or r in self._polka_done or r not in self._proposals:
            return False
        _, bhash = self._proposals[r]
        if not self._votes.quorum_for(r, PV, bhash, out) or not self._valid(bhash, out):
            return False
        self._polka_done.add(r)
        block = self._blocks[bhash]
        if self.step == Step.PREVOTE:
            self.locked_value = block
            self.locked_hash = bhash
            self.locked_round = r
            if self._ctx.can_vote:
                self._ctx.signatory.lock(self.height, r, bhash, out)
            self._cast(PC, bhash, out)
            self.step = Step.PRECOMMIT
        self.valid_value = block
        self.valid_round = r
        return True

    def _upon_nil_polka(self, out: list[Action]) -> bool:
        """Rule 7, lines 44-46."""
        if self.step != Step.PREVOTE or not self._votes.quorum_for(self.round, PV, None, out):
            return False
        self._cast(PC, None, out)
        self.step = Step.PRECOMMIT
        return True

    def _upon_precommits_any(self, out: list[Action]) -> bool:
        """Rule 8, lines 47-48."""
        r = self.round
        if r in self._precommit_timeout_done or not self._votes.quorum_any(r, PC, out):
            return False
        self._precommit_timeout_done.add(r)
        t = self._ctx.timeouts
        delay = t.precommit + r * t.precommit_delta
        out.append(ScheduleTimeout(self.height, self.round, Step.PRECOMMIT, delay))
        return True

    def _upon_commit_quorum(self, out: list[Action]) -> bool:
        """Rule 9, lines 49-54, in any round of the height."""
        has_quorum = self._ctx.validator_set.has_quorum
        for vs in self._votes.precommit_sets():
            for value in sorted(v for v in vs.values() if v is not None):
                if value not in self._blocks:
                    continue
                if not has_quorum(vs.power_for(value, verified_only=False)):
                    continue
                if self._votes.quorum_for(vs.round, PC, value, out) and self._valid(value, out):
                    certificate = self._commit_certificate(vs, value)
                    self.decision = Decision(self._blocks[value], value, certificate)
                    return True
        return False

    def _commit_certificate(self, vs: VoteSet, value: Hash) -> CommitCertificate:
        """Line 51's proof: the 2f+1 precommits for `value`, aggregated."""
        votes = vs.votes_for(value)
        return CommitCertificate(
            height=self.height,
            round=vs.round,
            block_hash=value,
            signers=self._ctx.validator_set.bitfield(v.validator for v in votes),
            aggregate_signature=self._ctx.verifier.aggregate([v.signature for v in votes]),
        )

    def _upon_later_round(self, now: float, out: list[Action]) -> bool:
        """Rule 10, lines 55-56: f+1 distinct validators at a higher round."""
        vset = self._ctx.validator_set
        seen = self._votes.rounds | set(self._proposals)
        for r in sorted((r for r in seen if r > self.round), reverse=True):
            if vset.has_one_third(vset.power_of(self._round_senders(r, verified_only=True))):
                self.start_round(Round(r), now, out)
                return True
            if vset.has_one_third(vset.power_of(self._round_senders(r, verified_only=False))):
                self._votes.verify_round(r, out)
                if vset.has_one_third(vset.power_of(self._round_senders(r, verified_only=True))):
                    self.start_round(Round(r), now, out)
                    return True
        return False

    def _round_senders(self, round_: int, *, verified_only: bool) -> set[ValidatorIndex]:
        senders = self._votes.senders(round_, verified_only=verified_only)
        if round_ in self._proposals:
            senders.add(self._proposals[round_][0].proposer)
        return senders

    # -- timeouts ------------------------------------------------------------------------------

    def on_timeout(self, event: TimeoutFired, now: float, out: list[Action]) -> None:
        """Rule 11, lines 57-67: OnTimeoutPropose, OnTimeoutPrevote, OnTimeoutPrecommit."""
        if event.height != self.height or event.round != self.round:
            return
        if event.step == Step.PROPOSE and self.step == Step.PROPOSE:
            self._cast(PV, None, out)
            self.step = Step.PREVOTE
        elif event.step == Step.PREVOTE and self.step == Step.PREVOTE:
            self._cast(PC, None, out)
            self.step = Step.PRECOMMIT
        elif event.step == Step.PRECOMMIT:
            self.start_round(Round(self.round + 1), now, out)
            return
        else:
            return
        self.progress(now, out)
