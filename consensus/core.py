"""The consensus state machine: Tendermint Algorithm 1 with a proof-of-learning getValue().

Follows Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus" (arXiv:1807.04938v3),
Algorithm 1. "2f + 1" reads "more than 2/3 of the voting power", "f + 1" "more than 1/3".
Rules as implemented, with the paper's line numbers:

 1. (l. 2-9)   Per height: round, step, lockedValue/lockedRound = nil/-1, validValue/validRound
               = nil/-1, an empty message log. Height h starts after block h-1 is committed.
 2. (l. 11-21) StartRound(r): step = propose. The proposer of (h, r) proposes validValue with
               validRound when it has one; otherwise getValue() is the proof-of-learning phase
               (below), and the proposal follows when it completes. Every node, the proposer too,
               schedules timeoutPropose(h, r) (the paper's proposer proposes synchronously; ours
               may wait for learning, and must not wait forever).
 3. (l. 22-27) ⟨PROPOSAL, h, r, v, -1⟩ in step propose: prevote id(v) if valid(v) and
               (lockedRound = -1 or lockedValue = v), else nil; step = prevote.
 4. (l. 28-33) ⟨PROPOSAL, h, r, v, vr⟩ with 0 <= vr < r and 2f+1 prevotes for id(v) in round vr,
               in step propose: prevote id(v) if valid(v) and (lockedRound <= vr or
               lockedValue = v), else nil; step = prevote.
 5. (l. 34-35) 2f+1 prevotes of any value in round r, step prevote, first time: schedule
               timeoutPrevote(h, r).
 6. (l. 36-43) Proposal v of round r, 2f+1 prevotes for id(v), valid(v), step >= prevote, first
               time: if step = prevote, lock v and precommit id(v), step = precommit; in either
               case validValue = v, validRound = r (so also in step precommit).
 7. (l. 44-46) 2f+1 prevotes for nil, step prevote: precommit nil, step = precommit. A nil polka
               never unlocks.
 8. (l. 47-48) 2f+1 precommits of any value in round r, first time: schedule
               timeoutPrecommit(h, r).
 9. (l. 49-54) A proposal v for any round r of this height, 2f+1 precommits for id(v) in r,
               valid(v): decide v (emit Commit with the aggregated precommits), move to h+1.
               (We accept v from any of this height's proposals whose block hashes to id(v).)
10. (l. 55-56) f+1 distinct validators' messages for a round > current round: StartRound(that
               round).
11. (l. 57-67) OnTimeoutPropose/Prevote/Precommit(h, r) act only if (h, r[, step]) is still the
               current one: prevote nil / precommit nil / StartRound(r+1). Stale timeouts are
               ignored. Timeouts grow linearly: base + r * delta.
12. Messages for the next two heights are buffered and replayed when the height starts;
    messages from f+1 of the power at later heights make the core ask the node for block sync
    (again every timeoutPropose while it lasts).
13. One vote per (validator, round, type) counts towards "any value" totals (rules 5, 8, 10);
    a second, different one is equivocation evidence and still counts towards its own value's
    2f+1 (rules 4, 6, 7, 9): two quorums of signers share >1/3 of the power either way, and an
    equivocator cannot hide a polka from part of the honest nodes (consensus/votes.py).
14. A re-proposal (vr >= 0) carries the round-vr prevotes it relies on (Proposal.polka_votes),
    the gossip guarantee of the paper made explicit: a node that missed them can apply rule 4.
15. The lock (lockedRound, id(lockedValue)) is persisted with the signer guard state, so a
    validator restarted within a height stays locked.

Proof of learning (DESIGN.md steps 1-6), getValue() of the round's proposer:
 P1. At the start of height h every trainer gets StartTraining(h, M(h-1)); its result is signed
     into an UpdateReceipt and gossiped.
 P2. The update window closes when every expected trainer's receipt is in, or at its timeout
     (from the start of the height). The proposer then asks the node to BuildCandidate from the
     receipts, if it holds those of strictly more than 2/3 of the expected trainers; otherwise
     it proposes a carry-over block ("too few updates").
 P3. The candidate is signed and gossiped; every validator asks its node to EvaluateCandidate
     and signs the verdict it returns (CandidateEvaluated) into an Attestation.
 P4. "Improved" attestations of >2/3 of the power: the proposer proposes the model block with an
     ImprovementCertificate. "Not improved" from >1/3 (a certificate is impossible) or the
     attestation timeout: a carry-over block that keeps M(h-1) and records why.
 P5. valid(v) (consensus.validity) checks the certificate deterministically; votes and commit
     as above.

Observers (me=None) and trainer-only members follow the same rules and commit, but never vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from consensus.codec import block_hash, genesis_hash, ledger_root
from consensus.crypto import Signer, Verifier, batch_verify_same_message
from consensus.events import (
    Action,
    AttestationReceived,
    BlockSynced,
    Broadcast,
    CandidateBuilt,
    CandidateEvaluated,
    CandidateReceived,
    Commit,
    Event,
    PersistSignerState,
    ProposalReceived,
    ReceiptReceived,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    Started,
    StartTraining,
    TimeoutFired,
    TrainingFinished,
    VoteReceived,
)
from consensus.genesis import validate_genesis
from consensus.guard import SignerState, SignRefused, check_sign, with_lock
from consensus.ledger import apply_block, genesis_ledger
from consensus.pol import LearningState, ProposerStage
from consensus.proposer import MAX_ROUND_AHEAD, ConsensusInvariantError, LearningPhase
from consensus.rules import TendermintRules
from consensus.signing import (
    proposal_bytes,
    vote_bytes,
)
from consensus.types import (
    Block,
    CommitCertificate,
    DuplicateVoteEvidence,
    Genesis,
    Hash,
    Height,
    Ledger,
    Proposal,
    Round,
    Step,
    ValidatorIndex,
    Vote,
    VoteType,
)
from consensus.validity import BlockChecker, Parent, make_evidence
from consensus.votes import VoteSet

MAX_BUFFERED_EVENTS = 20_000  # future-height messages kept for replay
MAX_HEIGHTS_BUFFERED = 2  # ... for at most this many heights ahead

__all__ = ["ChainTip", "ConsensusCore", "ConsensusInvariantError"]


@dataclass(frozen=True, slots=True)
class ChainTip:
    """The last committed block, its commit certificate and the ledger after it (restarts)."""

    block: Block
    commit_certificate: CommitCertificate
    ledger: Ledger


class ConsensusCore(TendermintRules, LearningPhase):
    """One node's consensus state; `handle(event, now)` is the only entry point.

    `now` is seconds (the node passes wall-clock time, simulations a virtual clock); the core only
    stamps it into headers and computes timeouts from it, it never reads a clock itself.
    """

    def __init__(
        self,
        genesis: Genesis,
        *,
        verifier: Verifier,
        me: ValidatorIndex | None = None,
        signer: Signer | None = None,
        signer_state: SignerState | None = None,
        tip: ChainTip | None = None,
    ) -> None:
        self.genesis = genesis
        self.validator_set = validate_genesis(genesis, verifier)
        self.verifier = verifier
        self.checker = BlockChecker(genesis, self.validator_set, verifier)
        self.me = me
        self._signer = signer
        if me is not None:
            if signer is None:
                raise ValueError("a member core needs its signer")
            if signer.public_key != genesis.validators[me].public_key:
                raise ValueError(f"the signer's key is not member {me}'s genesis key")
        self._can_vote = me is not None and self.validator_set.is_validator(me)
        self._is_trainer = me is not None and self.validator_set.is_trainer(me)
        self.signer_state = signer_state or SignerState()
        self._chain = genesis.chain_id
        self._genesis_hash = genesis_hash(genesis)
        if tip is None:
            self.last_block: Block | None = None
            self.last_commit: CommitCertificate | None = None
            self.ledger = genesis_ledger(genesis)
        else:
            self.last_block = tip.block
            self.last_commit = tip.commit_certificate
            self.ledger = tip.ledger
        self._last_hash = self._genesis_hash if tip is None else block_hash(tip.block)
        self.height = Height(self.ledger.height + 1)
        self._started = False
        self._buffer: list[Event] = []
        self._ahead: dict[ValidatorIndex, int] = {}
        self._evidence: dict[tuple[int, int, int, int], DuplicateVoteEvidence] = {}
        self.rejections: list[str] = []  # recent reasons a peer's message was refused
        self._reset_height(0.0)

    # -- read-only views -------------------------------------------------------------------

    @property
    def locked_round(self) -> int:
        """Algorithm 1's lockedRound."""
        return self._locked_round

    @property
    def valid_round(self) -> int:
        """Algorithm 1's validRound."""
        return self._valid_round

    @property
    def locked_value(self) -> Block | None:
        """Algorithm 1's lockedValue."""
        return self._locked_value

    @property
    def valid_value(self) -> Block | None:
        """Algorithm 1's validValue."""
        return self._valid_value

    @property
    def proposer_stage(self) -> ProposerStage:
        """Where the proof-of-learning phase of this node as proposer stands."""
        return self._pol.stage

    # -- entry point -----------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one event at time `now`; return the actions to execute, in order."""
        out: list[Action] = []
        self._dispatch(event, now, out)
        return out

    def _dispatch(self, event: Event, now: float, out: list[Action]) -> None:
        if isinstance(event, Started):
            if not self._started:
                self._started = True
                self._start_height(now, out)
            return
        if not self._started:
            self._buffer_event(event)
            return
        if isinstance(event, VoteReceived):
            self._on_vote(event.vote, now, out)
        elif isinstance(event, ProposalReceived):
            self._on_proposal(event.proposal, now, out)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event, now, out)
        elif isinstance(event, ReceiptReceived):
            self._on_receipt(event.receipt, now, out)
        elif isinstance(event, TrainingFinished):
            self._on_training_finished(event, now, out)
        elif isinstance(event, CandidateBuilt):
            self._on_candidate_built(event.candidate, now, out)
        elif isinstance(event, CandidateReceived):
            self._on_candidate(event.candidate, now, out)
        elif isinstance(event, CandidateEvaluated):
            self._on_evaluated(event, now, out)
        elif isinstance(event, AttestationReceived):
            self._on_attestation(event.attestation, now, out)
        elif isinstance(event, BlockSynced):
            self._on_block_synced(event.block, event.commit_certificate, now, out)
        else:  # pragma: no cover - exhaustive over Event
            raise ConsensusInvariantError(f"unknown event {event!r}")

    # -- heights and rounds ----------------------------------------------------------------

    def _reset_height(self, now: float) -> None:
        self.round = Round(0)
        self.step = Step.PROPOSE
        self._locked_value: Block | None = None
        self._locked_hash: Hash | None = None
        self._locked_round = -1
        self._valid_value: Block | None = None
        self._valid_round = -1
        self._proposals: dict[int, tuple[Proposal, Hash]] = {}
        self._blocks: dict[Hash, Block] = {}
        self._valid_cache: dict[Hash, bool] = {}
        self._votes: dict[tuple[int, VoteType], VoteSet] = {}
        self._rounds_seen: set[int] = set()
        self._prevote_timeout_done: set[int] = set()
        self._precommit_timeout_done: set[int] = set()
        self._polka_done: set[int] = set()
        self._pol = LearningState()
        self._height_start = now
        self._sync_requested_at: float | None = None

    def _start_height(self, now: float, out: list[Action]) -> None:
        """Begin self.height: P1 and StartRound(0), then replay buffered messages."""
        self._reset_height(now)
        h = self.height
        state = self.signer_state
        if self._can_vote and state.locked_height == h and state.locked_round >= 0:
            # restarted mid-height: keep the lock (not the value, which re-arrives by gossip)
            self._locked_round = state.locked_round
            self._locked_hash = Hash(state.locked_value)
        out.append(
            ScheduleTimeout(h, Round(0), Step.UPDATE_WINDOW, self.genesis.timeouts.update_window)
        )
        if self._is_trainer:
            out.append(StartTraining(h, self.model_hash))
        self._start_round(Round(0), now, out)
        buffered, self._buffer = self._buffer, []
        self._ahead = {v: hh for v, hh in self._ahead.items() if hh > h}
        for event in buffered:
            if self._event_height(event) == h:
                self._dispatch(event, now, out)
            elif self._event_height(event) > h:
                self._buffer.append(event)

    def _start_round(self, round_: Round, now: float, out: list[Action]) -> None:
        """Algorithm 1 lines 11-21."""
        self.round = round_
        self.step = Step.PROPOSE
        self._pol.stage = ProposerStage.IDLE
        t = self.genesis.timeouts
        remaining_window = max(0.0, self._height_start + t.update_window - now)
        if self._pol.window_closed:
            remaining_window = 0.0
        delay = remaining_window + t.attestation + t.propose + round_ * t.propose_delta
        out.append(ScheduleTimeout(self.height, round_, Step.PROPOSE, delay))
        if self._can_vote and self.validator_set.proposer_for(self.height, round_) == self.me:
            if self._valid_value is not None:
                self._propose(self._valid_value, Round(self._valid_round), out)
            else:
                self._pol.stage = ProposerStage.WAITING_FOR_UPDATES
                self._pol.stage_round = round_
                self._advance_learning(now, out)
        self._progress(now, out)

    # -- votes and proposals ---------------------------------------------------------------

    def _vote_set(self, round_: int, vote_type: VoteType) -> VoteSet:
        key = (round_, vote_type)
        vs = self._votes.get(key)
        if vs is None:
            vs = self._votes[key] = VoteSet(vote_type, Round(round_))
            self._rounds_seen.add(round_)
        return vs

    def _on_vote(self, vote: Vote, now: float, out: list[Action]) -> None:
        if self._add_vote(vote, now, out):
            self._progress(now, out)

    def _add_vote(self, vote: Vote, now: float, out: list[Action]) -> bool:
        """Log a vote (pending verification); True when it may change what the rules see."""
        if vote.height > self.height:
            self._note_ahead(vote.validator, vote.height, now, out)
            self._buffer_event(VoteReceived(vote))
            return False
        if vote.height < self.height:
            return False
        if not self.validator_set.is_validator(vote.validator):
            self._reject("vote from a non-validator")
            return False
        if not 0 <= vote.round <= self.round + MAX_ROUND_AHEAD:
            self._reject("vote for an impossible round")
            return False
        vs = self._vote_set(vote.round, vote.vote_type)
        power = self.validator_set.power(vote.validator)
        known = vs.get(vote.validator)
        if known is None:
            vs.add_pending(vote, power)
        elif known.block_hash != vote.block_hash:
            if vote.block_hash in vs.conflicting.get(vote.validator, {}):
                return False  # a repeat of a known conflicting vote
            self._check_equivocation(vs, known, vote, out)
        elif known.signature != vote.signature and vote.validator in vs.pending:
            # same value, other signature: one of them is a forgery; keep the one that verifies
            key = self.validator_set.public_keys[vote.validator]
            if self.verifier.verify(key, vote_bytes(self._chain, known), known.signature):
                return False
            vs.drop_pending(vote.validator, power)
            vs.add_pending(vote, power)
        else:
            return False  # a repeat of a counted vote
        return True

    def _check_equivocation(self, vs: VoteSet, known: Vote, vote: Vote, out: list[Action]) -> None:
        key = self.validator_set.public_keys[vote.validator]
        if not self.verifier.verify(key, vote_bytes(self._chain, vote), vote.signature):
            self._reject("vote with a bad signature")
            return
        if vote.validator in vs.pending and not self.verifier.verify(
            key, vote_bytes(self._chain, known), known.signature
        ):
            power = self.validator_set.power(vote.validator)
            vs.drop_pending(vote.validator, power)
            vs.add_pending(vote, power)
            return
        vs.add_conflicting(vote, self.validator_set.power(vote.validator))
        evidence = make_evidence(known, vote)
        ekey = (int(vote.validator), int(vote.height), int(vote.round), int(vote.vote_type))
        if ekey not in self._evidence and ekey not in set(self.ledger.punished):
            self._evidence[ekey] = evidence
            out.append(ReportEvidence(evidence))

    def _verify_votes(self, votes: Sequence[Vote]) -> list[bool]:
        first = votes[0]
        message = vote_bytes(self._chain, first)
        keys = [self.validator_set.public_keys[v.validator] for v in votes]
        return batch_verify_same_message(self.verifier, keys, message, [v.signature for v in votes])

    def _on_proposal(self, proposal: Proposal, now: float, out: list[Action]) -> None:
        if proposal.height > self.height:
            self._note_ahead(proposal.proposer, proposal.height, now, out)
            self._buffer_event(ProposalReceived(proposal))
            return
        if proposal.height < self.height:
            return
        r = proposal.round
        if not 0 <= r <= self.round + MAX_ROUND_AHEAD:
            self._reject("proposal for an impossible round")
            return
        if proposal.proposer != self.validator_set.proposer_for(self.height, r):
            self._reject("proposal from a member who is not the round's proposer")
            return
        if not -1 <= proposal.valid_round < r:
            self._reject("proposal with an impossible valid round")
            return
        if r in self._proposals:
            return  # first proposal of the round wins; a second one is the proposer's fault
        bhash = block_hash(proposal.block)
        key = self.validator_set.public_keys[proposal.proposer]
        if not self.verifier.verify(
            key, proposal_bytes(self._chain, proposal, bhash), proposal.signature
        ):
            self._reject("proposal with a bad signature")
            return
        self._store_proposal(proposal, bhash)
        if proposal.valid_round >= 0:
            for vote in proposal.polka_votes[: len(self.validator_set)]:
                if (
                    vote.vote_type == VoteType.PREVOTE
                    and vote.height == self.height
                    and vote.round == proposal.valid_round
                    and vote.block_hash == bhash
                ):
                    self._add_vote(vote, now, out)
        self._progress(now, out)

    def _store_proposal(self, proposal: Proposal, bhash: Hash) -> None:
        self._proposals[proposal.round] = (proposal, bhash)
        self._blocks[bhash] = proposal.block
        self._rounds_seen.add(proposal.round)

    def _valid(self, bhash: Hash) -> bool:
        """Algorithm 1's valid(v), cached per block hash."""
        cached = self._valid_cache.get(bhash)
        if cached is None:
            problem = self.checker.block_problem(self._blocks[bhash], self._parent())
            if problem:
                self._reject(f"invalid block: {problem}")
            cached = self._valid_cache[bhash] = problem is None
        return cached

    def _parent(self) -> Parent:
        last = self.last_block
        return Parent(
            height=self.height - 1,
            block_hash=self._last_hash,
            time_ms=self.genesis.genesis_time_ms if last is None else last.header.time_ms,
            ledger=self.ledger,
        )

    # -- signing -----------------------------------------------------------------------------

    def _guarded(self, new_state: SignerState, out: list[Action]) -> None:
        if new_state != self.signer_state:
            self.signer_state = new_state
            out.append(PersistSignerState(new_state))

    def _persist_lock(self, out: list[Action]) -> None:
        """Persist lockedRound and id(lockedValue) with the guard state."""
        if self._can_vote and self._locked_hash is not None:
            self._guarded(
                with_lock(self.signer_state, self.height, self._locked_round, self._locked_hash),
                out,
            )

    def _cast(self, vote_type: VoteType, value: Hash | None, out: list[Action]) -> None:
        """Sign and broadcast a vote (validators only; the guard may refuse)."""
        if not self._can_vote or self.me is None or self._signer is None:
            return
        step = Step.PREVOTE if vote_type == VoteType.PREVOTE else Step.PRECOMMIT
        try:
            state = check_sign(self.signer_state, self.height, self.round, step, value or b"")
        except SignRefused:
            return
        vote = Vote(vote_type, self.height, self.round, value, self.me)
        vote = replace(vote, signature=self._signer.sign(vote_bytes(self._chain, vote)))
        self._guarded(state, out)
        out.append(Broadcast(vote))
        vs = self._vote_set(self.round, vote_type)
        if vs.get(self.me) is None:
            vs.add_verified(vote, self.validator_set.power(self.me))

    def _propose(self, block: Block, valid_round: Round, out: list[Action]) -> None:
        """Line 19: broadcast ⟨PROPOSAL, h, r, v, vr⟩."""
        if self.me is None or self._signer is None:
            return
        bhash = block_hash(block)
        try:
            state = check_sign(self.signer_state, self.height, self.round, Step.PROPOSE, bhash)
        except SignRefused:
            return
        polka: tuple[Vote, ...] = ()
        if valid_round >= 0 and (valid_round, VoteType.PREVOTE) in self._votes:
            polka = tuple(self._votes[(valid_round, VoteType.PREVOTE)].votes_for(bhash))
        proposal = Proposal(self.height, self.round, block, valid_round, self.me)
        signature = self._signer.sign(proposal_bytes(self._chain, proposal, bhash))
        proposal = replace(proposal, signature=signature, polka_votes=polka)
        self._guarded(state, out)
        out.append(Broadcast(proposal))
        self._pol.stage = ProposerStage.PROPOSED
        if self.round not in self._proposals:
            self._store_proposal(proposal, bhash)

    def _commit_certificate(self, vs: VoteSet, value: Hash) -> CommitCertificate:
        votes = vs.votes_for(value)
        return CommitCertificate(
            height=self.height,
            round=vs.round,
            block_hash=value,
            signers=self.validator_set.bitfield(v.validator for v in votes),
            aggregate_signature=self.verifier.aggregate([v.signature for v in votes]),
        )

    def _commit(
        self, block: Block, bhash: Hash, cert: CommitCertificate, now: float, out: list[Action]
    ) -> None:
        """Line 51-54: decide, apply the ledger, start the next height."""
        ledger = apply_block(self.ledger, block)
        if ledger_root(ledger) != block.header.ledger_root:
            raise ConsensusInvariantError("committing a block whose ledger root does not match")
        out.append(Commit(block, cert, ledger))
        self.last_block = block
        self.last_commit = cert
        self.ledger = ledger
        self._last_hash = bhash
        punished = set(ledger.punished)
        self._evidence = {k: e for k, e in self._evidence.items() if k not in punished}
        self.height = Height(self.height + 1)
        self._start_height(now, out)

    def _on_block_synced(
        self, block: Block, cert: CommitCertificate, now: float, out: list[Action]
    ) -> None:
        if block.header.height != self.height:
            return
        bhash = block_hash(block)
        if cert.height != self.height or cert.block_hash != bhash:
            self._reject("synced block and certificate do not match")
            return
        problem = self.checker.commit_certificate_problem(cert) or self.checker.block_problem(
            block, self._parent()
        )
        if problem:
            self._reject(f"synced block refused: {problem}")
            return
        self._commit(block, bhash, cert, now, out)

    # -- buffering and sync --------------------------------------------------------------------

    @staticmethod
    def _event_height(event: Event) -> int:
        if isinstance(event, VoteReceived):
            return event.vote.height
        if isinstance(event, ProposalReceived):
            return event.proposal.height
        if isinstance(event, ReceiptReceived):
            return event.receipt.height
        if isinstance(event, CandidateReceived):
            return event.candidate.height
        if isinstance(event, AttestationReceived):
            return event.attestation.height
        if isinstance(event, BlockSynced):
            return event.block.header.height
        return -1

    def _buffer_event(self, event: Event) -> None:
        """Keep a message of the next heights for replay (rule 12). Messages further ahead
        are useless (the node will sync those blocks) and would let a peer fill the buffer."""
        if len(self._buffer) >= MAX_BUFFERED_EVENTS:
            return
        if not self._started or self._event_height(event) <= self.height + MAX_HEIGHTS_BUFFERED:
            self._buffer.append(event)

    def _note_ahead(
        self, validator: ValidatorIndex, height: int, now: float, out: list[Action]
    ) -> None:
        """Rule 12: f+1 of the power at later heights means we missed a commit. Ask for sync,
        and ask again every `timeouts.propose` seconds while it lasts (a request may be lost)."""
        if not self.validator_set.is_validator(validator):
            return
        if height > self._ahead.get(validator, 0):
            self._ahead[validator] = height
        last = self._sync_requested_at
        if last is not None and now - last < self.genesis.timeouts.propose:
            return
        if self.validator_set.has_one_third(self.validator_set.power_of(self._ahead)):
            self._sync_requested_at = now
            out.append(RequestSync(self.height))

    def _reject(self, reason: str) -> None:
        self.rejections.append(reason)
        if len(self.rejections) > 100:
            del self.rejections[:50]
