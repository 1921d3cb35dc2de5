"""The node shell: the one place that turns the consensus core's actions into I/O requests.

Pure and synchronous (no trio, libp2p, torch or sockets): every method takes the adapter's
`now` and returns the `Request`s to perform, in order (consensus/shell/requests.py). The daemon's
driver (`node/driver.py`), the deterministic simulator (`consensus/sim/runner.py`) and the test
fixtures all drive this same class, so the simulator tests the routing, re-send, sync-polling,
candidate-assembly and phase-marking code that ships (docs/ARCHITECTURE.md "The node shell").

What the shell owns:
- routing: each action becomes a request; each signed message goes to its topic;
- re-sends: gossip only reaches peers connected at the time, so when a height has made no
  progress for `policy.resend_after`, `tick` re-publishes what this node signed at that height
  (byte-identical, never an equivocation; the cores deduplicate), as CometBFT's gossip routines
  re-send votes a peer lacks;
- block sync: the core's `RequestSync`, and the periodic poll of `tick` (a node that restarted
  or fell behind may hear nothing that would make its core ask), one request in flight at a time;
- candidate assembly: the adapter only aggregates (`Aggregate` -> `aggregated`), the shell
  builds the `Candidate` the core signs;
- update prefetch: a receipt's blob is fetched as the receipt arrives, not when the candidate
  that needs it shows up;
- phase marking (consensus/shell/phases.py) and the per-height "missing validators" count;
- peer faults: the core's `Rejected` actions become `CountRejection` requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consensus.codec import candidate_hash
from consensus.core import ConsensusCore
from consensus.events import (
    Action,
    BlockSynced,
    Broadcast,
    BroadcastGovernance,
    BuildCandidate,
    CandidateBuilt,
    CandidateEvaluated,
    Commit,
    EvaluateCandidate,
    Event,
    GovernanceReceived,
    GovernanceRequested,
    Message,
    PersistSignerState,
    Rejected,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    Started,
    StartTraining,
    TimeoutFired,
    TrainingFinished,
    received,
)
from consensus.rejections import UNAVAILABLE
from consensus.shell.phases import HeightTimes
from consensus.shell.requests import (
    ATTESTATIONS,
    CANDIDATES,
    CONSENSUS,
    GOVERNANCE,
    RECEIPTS,
    Aggregate,
    CountRejection,
    Evaluate,
    FetchBlocks,
    FetchUpdate,
    NoteEvidence,
    PersistSigner,
    Publish,
    Request,
    StartTimer,
    StoreCommit,
    SyncedBlock,
    Train,
)
from consensus.types import (
    Attestation,
    Candidate,
    EvalReport,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    Proposal,
    UpdateReceipt,
    Vote,
    VoteType,
)

Slot = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ShellPolicy:
    """The shell's timing knobs (the daemon's defaults; the simulator sets its own)."""

    resend_after: float = 3.0
    """A height without a commit for this long: re-send what we signed at it, poll for blocks."""
    resend_backoff: float = 2.0
    """Each further re-send at one height waits this factor longer than the one before: a
    network too loaded to commit must not be fed a growing share of repeats (1: no backoff)."""
    resend_max: float = 12.0
    """The longest wait between two re-sends at one height."""
    poll_when_idle: bool = True
    """Also poll one peer (round-robin) for blocks when idle, even if no peer seems ahead."""
    sync_timeout: float = 35.0
    """A `FetchBlocks` unanswered for this long no longer holds back the next one."""


def topic_of(message: Message) -> str:
    """The gossip topic a core message travels on."""
    if isinstance(message, Proposal | Vote):
        return CONSENSUS
    if isinstance(message, UpdateReceipt):
        return RECEIPTS
    if isinstance(message, Candidate):
        return CANDIDATES
    return ATTESTATIONS


def signed_slot(message: Message) -> Slot:
    """(kind, height, ...) under which a signer signs only one value (height always 2nd)."""
    if isinstance(message, Vote):
        return ("vote", int(message.height), int(message.round), int(message.vote_type))
    if isinstance(message, Proposal):
        return ("proposal", int(message.height), int(message.round))
    if isinstance(message, Candidate):
        return ("candidate", int(message.height), int(message.round))
    if isinstance(message, Attestation):
        return ("attestation", int(message.height), bytes(message.candidate_hash))
    return ("receipt", int(message.height), bytes(message.base_model_hash))


class NodeShell:
    """One node's consensus core with everything around it that is not I/O."""

    def __init__(
        self, core: ConsensusCore, *, trains: bool = True, policy: ShellPolicy | None = None
    ) -> None:
        self.core = core
        self.trains = trains  # False: StartTraining is dropped (no trainer role, or no data)
        self.policy = policy or ShellPolicy()
        self.times = HeightTimes(start=0.0)
        self.highest_seen = 0  # the highest height of any message delivered to us
        self._signed: dict[Slot, Message] = {}  # what we signed at the current height(s)
        self._precommitted: dict[int, set[int]] = {}  # height -> whose precommit we saw
        self._sync_until: float | None = None  # a FetchBlocks in flight until then
        self._turn = 0
        self._resend = (-1, 0.0, 0.0)  # (height, next re-send at, gap after it)

    # -- inputs --------------------------------------------------------------------------

    def start(self, now: float) -> list[Request]:
        """Start the core: it begins its next height."""
        self.times = HeightTimes(start=now)
        return self._run(Started(), now)

    def deliver(self, message: Message, now: float) -> list[Request]:
        """A gossiped message that passed the edge's admission checks."""
        height = int(message.height)
        self.highest_seen = max(self.highest_seen, height)
        current = int(self.core.height)
        times = self.times
        out: list[Request] = []
        if isinstance(message, Vote):
            if message.vote_type == VoteType.PRECOMMIT and height >= current - 1:
                self._precommitted.setdefault(height, set()).add(int(message.validator))
        elif isinstance(message, Proposal) and height == current:
            times.proposal_at = times.proposal_at or now
        elif isinstance(message, Candidate) and height == current:
            times.candidate_at = times.candidate_at or now
        elif isinstance(message, UpdateReceipt):
            # every validator needs every update to check the candidate: fetch it now, while
            # the other receipts are still arriving
            out.append(FetchUpdate(message.blob_hash, message.author))
            if height == current and times.candidate_at is None:
                times.last_receipt_at = now
        out += self._run(received(message), now)
        return out

    def deliver_governance(
        self, tx: GovernanceProposal | GovernanceApproval, now: float
    ) -> list[Request]:
        """A gossiped governance proposal or approval (consensus/governance.py)."""
        return self._run(GovernanceReceived(tx), now)

    def request_governance(self, request: GovernanceRequested, now: float) -> list[Request]:
        """The operator proposes a member-set change or approves a pending one."""
        return self._run(request, now)

    def fire(self, event: TimeoutFired, now: float) -> list[Request]:
        """A timer of an earlier `StartTimer` expired (stale ones are ignored by the core)."""
        return self._run(event, now)

    def trained(self, event: TrainingFinished, *, seconds: float, now: float) -> list[Request]:
        """The answer to `Train`: this site's update is stored; the core signs the receipt."""
        times = self.times
        if int(event.height) == int(self.core.height):
            times.train_s = seconds
            times.trained_at = now
            if times.candidate_at is None:
                times.last_receipt_at = now
        return self._run(event, now)

    def aggregated(
        self,
        request: Aggregate,
        *,
        accepted: Sequence[UpdateReceipt],
        rejected: Sequence[UpdateReceipt],
        model_hash: Hash | None,
        now: float,
        reasons: Sequence[str] = (),
        reason: str = "",
    ) -> list[Request]:
        """The answer to `Aggregate`: assemble the candidate (the core signs it).

        `accepted` must be in the order the model was aggregated in (float sums depend on it,
        and every evaluator recomputes in the candidate's order); `model_hash` None means no
        update survived, and the candidate keeps the base model. `reasons` name each rejection
        (consensus/rejections.py; empty: "unavailable" for each, a rejection nobody proves);
        `reason` says why no candidate could be built, for the carry-over block (e.g.
        `secagg-threshold`).
        """
        action = request.action
        me = self.core.me
        candidate = Candidate(
            height=action.height,
            round=action.round,
            proposer=me if me is not None else 0,  # type: ignore[arg-type]
            base_model_hash=action.base_model_hash,
            model_hash=model_hash if model_hash is not None else action.base_model_hash,
            receipts=tuple(accepted),
            rejected=tuple(rejected),
            rule=self.core.genesis.aggregation_rule,
            rejection_reasons=tuple(reasons) if reasons else (UNAVAILABLE,) * len(rejected),
        )
        return self._run(CandidateBuilt(candidate, reason[:64]), now)

    def evaluated(
        self,
        request: Evaluate,
        *,
        improved: bool,
        report: EvalReport,
        seconds: float,
        now: float,
    ) -> list[Request]:
        """The answer to `Evaluate`: the local verdict, which the core signs into an attestation."""
        if int(request.candidate.height) == int(self.core.height):
            self.times.eval_s += seconds
        return self._run(CandidateEvaluated(request.candidate_hash, improved, report), now)

    def blocks_fetched(self, blocks: Sequence[SyncedBlock], now: float) -> list[Request]:
        """The answer to `FetchBlocks` (possibly empty): feed the next heights to the core,
        which re-verifies each block and its commit certificate."""
        self._sync_until = None
        out: list[Request] = []
        for block, certificate in blocks:
            if int(block.header.height) == int(self.core.height):
                out += self._run(BlockSynced(block, certificate), now)
        return out

    def tick(self, now: float, *, connected: bool = True) -> list[Request]:
        """Periodic: re-send and poll for blocks when the height is idle; forget old messages.

        The adapter calls this about every `policy.resend_after` seconds; `connected` False
        (no peer at all) skips the work that would reach nobody.
        """
        current = int(self.core.height)
        out: list[Request] = []
        if connected and now - self.times.start >= self.policy.resend_after:
            if self._resend_due(current, now):
                for slot in sorted(self._signed, key=repr):
                    if slot[1] == current:
                        message = self._signed[slot]
                        out.append(Publish(topic_of(message), message, resend=True))
                me = self.core.me
                for tx in self.core.governance.txs():
                    if me is not None and tx.signer == me:
                        out.append(Publish(GOVERNANCE, tx, resend=True))
            if not self._syncing(now):
                if self.highest_seen > current:
                    out.append(self._fetch_blocks(current, None, now))
                elif self.policy.poll_when_idle:
                    self._turn += 1
                    out.append(self._fetch_blocks(current, self._turn, now))
        for slot in [s for s in self._signed if s[1] < current]:
            del self._signed[slot]
        return out

    def _resend_due(self, current: int, now: float) -> bool:
        """True when this idle height's next re-send is due (gaps grow by `resend_backoff`)."""
        policy = self.policy
        height, due, gap = self._resend
        if height != current:
            due, gap = self.times.start + policy.resend_after, policy.resend_after
        if now < due:
            self._resend = (current, due, gap)
            return False
        gap = min(gap * policy.resend_backoff, policy.resend_max)
        self._resend = (current, now + gap, gap)
        return True

    def feed(self, event: Event, now: float) -> list[Request]:
        """Any core event, for adapters and tests that produce events directly."""
        if isinstance(event, Started):
            return self.start(now)
        return self._run(event, now)

    # -- the one interpreter of core actions -----------------------------------------------

    def _run(self, event: Event, now: float) -> list[Request]:
        return self._route(self.core.handle(event, now), now)

    def _route(self, actions: Sequence[Action], now: float) -> list[Request]:
        out: list[Request] = []
        times = self.times
        for action in actions:
            if isinstance(action, Broadcast):
                message = action.message
                self._signed[signed_slot(message)] = message
                if isinstance(message, Proposal):
                    times.proposal_at = times.proposal_at or now
                elif isinstance(message, Candidate):
                    times.candidate_at = times.candidate_at or now
                out.append(Publish(topic_of(message), message))
            elif isinstance(action, BroadcastGovernance):
                out.append(Publish(GOVERNANCE, action.tx))
            elif isinstance(action, PersistSignerState):
                out.append(PersistSigner(action.state))
            elif isinstance(action, ScheduleTimeout):
                fired = TimeoutFired(action.height, action.round, action.step)
                out.append(StartTimer(max(0.0, action.delay_seconds), fired))
            elif isinstance(action, StartTraining):
                if self.trains:
                    out.append(Train(action))
            elif isinstance(action, BuildCandidate):
                times.building_at = times.building_at or now
                out.append(Aggregate(action))
            elif isinstance(action, EvaluateCandidate):
                candidate = action.candidate
                if int(candidate.height) == int(self.core.height):
                    times.candidate_at = times.candidate_at or now
                out.append(Evaluate(candidate, candidate_hash(candidate)))
            elif isinstance(action, Commit):
                out.append(self._committed(action, now))
                times = self.times
            elif isinstance(action, ReportEvidence):
                out.append(NoteEvidence(action.evidence))
            elif isinstance(action, RequestSync):
                if not self._syncing(now):
                    out.append(self._fetch_blocks(int(action.from_height), None, now))
            elif isinstance(action, Rejected):
                out.append(CountRejection(action.reason, action.detail))
        return out

    def _committed(self, action: Commit, now: float) -> StoreCommit:
        block = action.block
        height = int(block.height)
        phases = self.times.phases(now)
        missing: int | None = None
        previous = height - 1
        if previous >= 1:
            # validators from whom no precommit of the previous height reached us, late ones
            # included (the certificate itself stops at the first votes past 2/3)
            heard = self._precommitted.pop(previous, set())
            if block.last_commit is not None:
                heard |= set(self.core.validator_set.indices(block.last_commit.signers) or ())
            if self.core.me is not None:
                heard.add(int(self.core.me))
            vset = self.core.validator_set
            voting = {i for i in range(len(vset)) if vset.is_validator(i)}
            missing = len(voting - heard)
        for old in [h for h in self._precommitted if h < previous]:
            del self._precommitted[old]
        self.times = HeightTimes(start=now)
        return StoreCommit(action, phases, missing)

    def _syncing(self, now: float) -> bool:
        return self._sync_until is not None and now < self._sync_until

    def _fetch_blocks(self, from_height: int, turn: int | None, now: float) -> FetchBlocks:
        if self.policy.sync_timeout > 0:
            self._sync_until = now + self.policy.sync_timeout
        return FetchBlocks(Height(from_height), turn)


__all__ = ["NodeShell", "ShellPolicy", "signed_slot", "topic_of"]
