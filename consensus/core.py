"""The consensus core: Tendermint's Algorithm 1 with a proof-of-learning getValue().

One object per node, one entry point: `ConsensusCore.handle(event, now) -> list[Action]`. The
core is composed of two sub-machines per height, each with its own module:

- `consensus.tendermint.Tendermint`: Algorithm 1 of Buchman, Kwon, Milosevic, "The latest
  gossip on BFT consensus" (arXiv:1807.04938v3), with the numbered rule list and the paper's
  line numbers at the code that implements each rule;
- `consensus.learning_round.LearningRound`: getValue() as proof of learning (P1-P5): receipts,
  candidates, attestations, and the block the round's proposer proposes.

The core itself owns what outlives a height: the committed chain (ledger, last block and
commit), the signer guard state, the evidence pool, the buffer of messages for later heights
and block sync (rules 1, 9 and 12 of consensus/tendermint.py). Committing never re-enters the
dispatcher: a decision is recorded by the height's machine, and `handle`'s work queue commits
it, starts the next height and replays the messages buffered for it, so the stack depth does
not grow with the number of heights decided in one call.

Peer faults are `Rejected` actions in the output (reason codes: `consensus.admission.REASONS`
and `consensus.errors.CORE_REASONS`); our own bugs raise `ConsensusInvariantError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from consensus.admission import Admission
from consensus.codec import block_hash, genesis_hash, ledger_root
from consensus.context import Context, Signatory, with_members
from consensus.crypto import Signer, Verifier
from consensus.errors import (
    GOVERNANCE_INVALID,
    SYNC_INVALID,
    SYNC_MISMATCH,
    ConsensusInvariantError,
)
from consensus.events import (
    Action,
    AttestationReceived,
    BlockSynced,
    BroadcastGovernance,
    CandidateReceived,
    Commit,
    Event,
    GovernanceReceived,
    GovernanceRequested,
    ProposalReceived,
    ReceiptReceived,
    Rejected,
    RequestSync,
    Started,
    TimeoutFired,
    VoteReceived,
)
from consensus.genesis import validate_genesis
from consensus.governance import next_members
from consensus.governance_pool import GovernancePool, GovernanceTx
from consensus.guard import SignerState
from consensus.late_commit import LateCommit
from consensus.learning_round import LearningRound
from consensus.learning_state import ProposerStage
from consensus.ledger import apply_block, genesis_ledger
from consensus.privacy import Accountant
from consensus.tendermint import Decision, Tendermint
from consensus.types import (
    Block,
    CommitCertificate,
    Genesis,
    Hash,
    Height,
    Ledger,
    Round,
    Step,
    ValidatorIndex,
)
from consensus.validators import ValidatorSet
from consensus.validity import BlockChecker, Parent
from consensus.votes import EvidencePool

MAX_BUFFERED_EVENTS = 20_000  # future-height messages kept for replay
MAX_HEIGHTS_BUFFERED = 2  # ... for at most this many heights ahead
MAX_HEIGHTS_PER_EVENT = 64
"""Heights one event may decide. Replaying buffered messages decides at most a few; more means
a chain where every height decides itself at once (a lone validator and no trainers)."""

_ROUND_STEPS = (Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT)  # timeouts of Algorithm 1

__all__ = ["ChainTip", "ConsensusCore"]


@dataclass(frozen=True, slots=True)
class ChainTip:
    """The last committed block, its commit certificate and the ledger after it (restarts)."""

    block: Block
    commit_certificate: CommitCertificate
    ledger: Ledger


@dataclass(frozen=True, slots=True)
class _Work:
    """One event for the dispatcher; `replay_for` is the height it was buffered for."""

    event: Event
    replay_for: int | None = None


class ConsensusCore:
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
        next_signers: Sequence[Signer] = (),
        accountant: Accountant | None = None,
    ) -> None:
        """`me` and `signer`: this member's index and key (`me` None with a signer: a node that
        is not a member yet finds its index once governance adds its key). `next_signers`: keys
        this member may hold after a rotation; at each height the core signs with the one the
        member set of that height names (docs/ARCHITECTURE.md "Governance")."""
        self.genesis = genesis
        genesis_set = validate_genesis(genesis, verifier)
        self.verifier = verifier
        tip_members = tip.ledger.members if tip is not None and tip.ledger.members else None
        if me is not None:
            if signer is None:
                raise ValueError("a member core needs its signer")
            members = tip_members or genesis.validators
            keys = {bytes(s.public_key) for s in (signer, *next_signers)}
            if me >= len(members) or bytes(members[me].public_key) not in keys:
                raise ValueError(f"the signer's key is not member {me}'s genesis key")
        self._signers = tuple(s for s in (signer, *next_signers) if s is not None)
        self._fixed_me = me
        self._ctx = Context(
            genesis=genesis,
            validator_set=genesis_set,
            verifier=verifier,
            admission=Admission.for_genesis(genesis, verifier, genesis_set),
            checker=BlockChecker(genesis, genesis_set, verifier, accountant),
            signatory=Signatory(genesis.chain_id, me, signer, signer_state or SignerState()),
            evidence=EvidencePool(),
            can_vote=me is not None and genesis_set.is_validator(me),
            is_trainer=me is not None and genesis_set.is_trainer(me),
            governance=GovernancePool(genesis.chain_id, verifier),
        )
        if tip is None:
            self.last_block: Block | None = None
            self.last_commit: CommitCertificate | None = None
            self.ledger = genesis_ledger(genesis)
            self._last_hash = genesis_hash(genesis)
        else:
            self.last_block = tip.block
            self.last_commit = tip.commit_certificate
            self.ledger = tip.ledger
            self._last_hash = block_hash(tip.block)
        self.height = Height(self.ledger.height + 1)
        self._adopt_members()
        self._late = LateCommit(genesis.chain_id, verifier)
        self._late.reset(
            self.last_commit, self.checker.set_for(self.ledger.members or genesis.validators)
        )
        self._started = False
        self._buffer: list[Event] = []
        self._ahead: dict[ValidatorIndex, int] = {}
        self._sync_requested_at: float | None = None
        self._tendermint, self._learning = self._new_height(0.0)

    # -- read-only views -------------------------------------------------------------------

    @property
    def validator_set(self) -> ValidatorSet:
        """The member set of the current height (consensus/governance.py)."""
        return self._ctx.validator_set

    @property
    def checker(self) -> BlockChecker:
        """valid(v) against the current height's set."""
        return self._ctx.checker

    @property
    def me(self) -> ValidatorIndex | None:
        """This member's index (None: an observer, or a node not yet added)."""
        return self._ctx.me

    @property
    def _pool(self) -> GovernancePool:
        pool = self._ctx.governance
        if pool is None:  # pragma: no cover - the core always makes one
            raise ConsensusInvariantError("the core has no governance pool")
        return pool

    @property
    def governance(self) -> GovernancePool:
        """Governance transactions heard but not yet on chain."""
        return self._pool

    @property
    def admission(self) -> Admission:
        """The admission checks of the current height's set (the gossip edge uses them)."""
        return self._ctx.admission

    @property
    def signer_state(self) -> SignerState:
        """The double-sign guard state (persisted by the node on `PersistSignerState`)."""
        return self._ctx.signatory.state

    @signer_state.setter
    def signer_state(self, state: SignerState) -> None:
        self._ctx.signatory.state = state

    @property
    def model_hash(self) -> Hash:
        """The committed global model M(h-1)."""
        return self.ledger.model_hash

    @property
    def round(self) -> Round:
        return self._tendermint.round

    @property
    def step(self) -> Step:
        return self._tendermint.step

    @property
    def locked_round(self) -> int:
        """Algorithm 1's lockedRound."""
        return self._tendermint.locked_round

    @property
    def valid_round(self) -> int:
        """Algorithm 1's validRound."""
        return self._tendermint.valid_round

    @property
    def locked_value(self) -> Block | None:
        """Algorithm 1's lockedValue."""
        return self._tendermint.locked_value

    @property
    def valid_value(self) -> Block | None:
        """Algorithm 1's validValue."""
        return self._tendermint.valid_value

    @property
    def proposer_stage(self) -> ProposerStage:
        """Where the learning round of this node as proposer stands."""
        return self._learning.stage

    # -- entry point -----------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one event at time `now`; return the actions to execute, in order."""
        out: list[Action] = []
        work = deque([_Work(event)])
        decided = 0
        while work:
            item = work.popleft()
            event = item.event
            if item.replay_for is not None and not self._replay_now(item.replay_for, event):
                continue
            if isinstance(event, Started):
                if self._started:
                    continue
                self._started = True
                work.extendleft(reversed(self._start_height(now, out)))
            elif not self._started and not isinstance(
                event, GovernanceReceived | GovernanceRequested
            ):
                self._buffer_event(event)
            else:
                self._dispatch(event, now, out)
            # commit what this event decided, and any height that decides as it starts
            while (decision := self._tendermint.decision) is not None:
                decided += 1
                if decided > MAX_HEIGHTS_PER_EVENT:
                    raise ConsensusInvariantError(
                        f"one event decided more than {MAX_HEIGHTS_PER_EVENT} heights"
                    )
                self._commit(decision, out)
                work.extendleft(reversed(self._start_height(now, out)))
        return out

    def _replay_now(self, replay_for: int, event: Event) -> bool:
        """A buffered message is replayed as if it had just arrived at the height it was
        buffered for; one for a later height goes back into the buffer, unless the replay
        itself already committed its way to that height (then it is current: deliver it)."""
        height = _event_height(event)
        if height > replay_for and height != self.height:
            self._buffer.append(event)
            return False
        return height == replay_for or height == self.height

    def _dispatch(self, event: Event, now: float, out: list[Action]) -> None:
        """Route an event of a started core to this height's machines; messages of later
        heights are buffered (rule 12), of earlier ones dropped."""
        if isinstance(event, VoteReceived | ProposalReceived):
            message_height = _event_height(event)
            if message_height > self.height:
                message = event.vote if isinstance(event, VoteReceived) else event.proposal
                self._note_ahead(message.signer, message_height, now, out)
                self._buffer_event(event)
            elif isinstance(event, VoteReceived) and message_height == self.height - 1:
                self._late.add(event.vote)
            elif message_height == self.height:
                if isinstance(event, VoteReceived):
                    self._tendermint.on_vote(event.vote, now, out)
                else:
                    self._tendermint.on_proposal(event.proposal, now, out)
        elif isinstance(event, TimeoutFired) and event.step in _ROUND_STEPS:
            self._tendermint.on_timeout(event, now, out)
        elif isinstance(event, BlockSynced):
            self._on_block_synced(event.block, event.commit_certificate, out)
        elif isinstance(event, GovernanceReceived):
            self._on_governance(event.tx, out)
        elif isinstance(event, GovernanceRequested):
            self._submit_governance(event, out)
        elif isinstance(event, Started):  # pragma: no cover - handled by `handle`
            raise ConsensusInvariantError("Started reached the dispatcher")
        else:
            if isinstance(event, ReceiptReceived | CandidateReceived | AttestationReceived):
                message_height = _event_height(event)
                if message_height > self.height:
                    self._buffer_event(event)
                    return
                if message_height < self.height:
                    return
            value = self._learning.handle(event, now, self._tendermint.step, out)
            if value is not None:
                self._tendermint.propose_value(value, now, out)

    # -- heights ---------------------------------------------------------------------------

    def _parent(self) -> Parent:
        last = self.last_block
        return Parent(
            height=self.height - 1,
            block_hash=self._last_hash,
            time_ms=self.genesis.genesis_time_ms if last is None else last.header.time_ms,
            ledger=self.ledger,
        )

    def _new_height(self, now: float) -> tuple[Tendermint, LearningRound]:
        """Rule 1: fresh round state and learning round for `self.height`."""
        parent = self._parent()
        learning = LearningRound(
            self.height, parent, self._late.certificate, self._ctx, started_at=now
        )
        return Tendermint(self.height, parent, self._ctx, learning), learning

    def _start_height(self, now: float, out: list[Action]) -> list[_Work]:
        """Begin self.height: P1 and StartRound(0); return the buffered messages to replay."""
        self._adopt_members()
        self._pool.prune(self.ledger)
        self._tendermint, self._learning = self._new_height(now)
        self._sync_requested_at = None
        h = self.height
        state = self.signer_state
        if self._ctx.can_vote and state.locked_height == h and state.locked_round >= 0:
            self._tendermint.restore_lock(state.locked_round, Hash(state.locked_value))
        self._learning.start(out)
        self._tendermint.start_round(Round(0), now, out)
        if self._tendermint.decision is not None:
            return []  # decided at once: the buffer is the next height's to replay
        buffered, self._buffer = self._buffer, []
        self._ahead = {v: hh for v, hh in self._ahead.items() if hh > h}
        return [_Work(event, replay_for=h) for event in buffered]

    def _commit(self, decision: Decision, out: list[Action]) -> None:
        """Lines 49-54 (rule 9): apply the decided block and move to the next height."""
        block = decision.block
        ledger = apply_block(self.ledger, block, self.genesis.safeguards.evidence_consequence)
        if ledger_root(ledger) != block.header.ledger_root:
            raise ConsensusInvariantError("committing a block whose ledger root does not match")
        out.append(Commit(block, decision.certificate, ledger))
        self.last_block = block
        self.last_commit = decision.certificate
        self.ledger = ledger
        self._last_hash = decision.block_hash
        self._ctx.evidence.prune(ledger.punished)
        self._late.reset(
            decision.certificate, self.checker.set_for(ledger.members or self.genesis.validators)
        )
        self.height = Height(self.height + 1)

    def _adopt_members(self) -> None:
        """Switch to the member set of `self.height` when governance changed it (the checks,
        this node's index, the key it signs with: consensus/context.py `with_members`)."""
        members = next_members(self.ledger) or self.genesis.validators
        ctx = self._ctx
        if members == ctx.validator_set.members and (ctx.me is not None or not self._signers):
            return
        self._ctx = with_members(ctx, self.verifier, members, self._signers, self._fixed_me)

    # -- governance ------------------------------------------------------------------------

    def _on_governance(self, tx: GovernanceTx, out: list[Action]) -> None:
        """A proposal or approval from gossip: kept for a block, or refused with its reason."""
        problem = self._pool.add(self.ledger, tx)
        if problem is not None:
            out.append(Rejected(GOVERNANCE_INVALID, problem))

    def _submit_governance(self, event: GovernanceRequested, out: list[Action]) -> None:
        """This member proposes or approves; the signed transaction goes into the pool and to
        every peer."""
        tx, problem = self._pool.submit(
            self._ctx.signatory, self.ledger, event.change, event.approve, event.height
        )
        if tx is None:
            out.append(Rejected(GOVERNANCE_INVALID, problem or "nothing to sign"))
        else:
            out.append(BroadcastGovernance(tx))

    def _on_block_synced(self, block: Block, cert: CommitCertificate, out: list[Action]) -> None:
        """A committed block fetched from peers: decide it if its certificate proves it."""
        if block.header.height != self.height:
            return
        bhash = block_hash(block)
        if cert.height != self.height or cert.block_hash != bhash:
            out.append(Rejected(SYNC_MISMATCH, "synced block and certificate do not match"))
            return
        problem = self.checker.commit_certificate_problem(cert) or self.checker.block_problem(
            block, self._parent()
        )
        if problem:
            out.append(Rejected(SYNC_INVALID, f"synced block refused: {problem}"))
            return
        self._tendermint.adopt(Decision(block, bhash, cert))

    # -- buffering and sync (rule 12) --------------------------------------------------------

    def _buffer_event(self, event: Event) -> None:
        """Keep a message of the next heights for replay (rule 12). Messages further ahead
        are useless (the node will sync those blocks) and would let a peer fill the buffer."""
        if len(self._buffer) >= MAX_BUFFERED_EVENTS:
            return
        if not self._started or _event_height(event) <= self.height + MAX_HEIGHTS_BUFFERED:
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


def _event_height(event: Event) -> int:
    """The height a message event belongs to; -1 for events that are not messages."""
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
