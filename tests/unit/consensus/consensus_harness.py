"""Test helpers for the consensus unit tests: signed messages, blocks, and a tiny lossless net.

Not a simulator (that is consensus/sim/): this is the smallest thing that lets a test build a
state by feeding events, in the style of h11's test_state.py.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from consensus.codec import block_hash, commit_hash, genesis_hash, ledger_root, updates_root
from consensus.core import ConsensusCore
from consensus.crypto import FakeSigner, FakeVerifier
from consensus.events import (
    Action,
    AttestationReceived,
    Broadcast,
    BuildCandidate,
    CandidateBuilt,
    CandidateEvaluated,
    CandidateReceived,
    Commit,
    EvaluateCandidate,
    Event,
    ProposalReceived,
    ReceiptReceived,
    ScheduleTimeout,
    Started,
    StartTraining,
    TrainingFinished,
    VoteReceived,
)
from consensus.genesis import make_genesis
from consensus.ledger import apply_block, genesis_ledger
from consensus.signing import proposal_bytes, vote_bytes
from consensus.types import (
    HASH_SIZE,
    Attestation,
    Block,
    Candidate,
    EvalReport,
    Genesis,
    Hash,
    Header,
    Height,
    Ledger,
    Proposal,
    Round,
    Timeouts,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
    VoteType,
)

CHAIN = "test-chain"
TIMEOUTS = Timeouts(
    propose=3.0,
    propose_delta=1.0,
    prevote=1.0,
    prevote_delta=0.5,
    precommit=1.0,
    precommit_delta=0.5,
    update_window=10.0,
    attestation=5.0,
)


def fake_signers(n: int) -> list[FakeSigner]:
    """n deterministic fake signers."""
    return [FakeSigner(bytes([i + 1]) * 32) for i in range(n)]


@dataclass
class Cluster:
    """A genesis with its signers and verifier."""

    genesis: Genesis
    signers: list[FakeSigner]
    verifier: FakeVerifier

    def core(self, me: int | None) -> ConsensusCore:
        """A core for member `me` (None: observer)."""
        if me is None:
            return ConsensusCore(self.genesis, verifier=self.verifier)
        return ConsensusCore(
            self.genesis,
            verifier=self.verifier,
            me=ValidatorIndex(me),
            signer=self.signers[me],
        )

    def vote(
        self, i: int, vote_type: VoteType, height: int, round_: int, value: Hash | None
    ) -> Vote:
        """A vote signed by member i."""
        vote = Vote(vote_type, Height(height), Round(round_), value, ValidatorIndex(i))
        return replace(vote, signature=self.signers[i].sign(vote_bytes(CHAIN, vote)))

    def proposal(self, block: Block, round_: int, valid_round: int = -1) -> Proposal:
        """A proposal for `block` signed by the proposer of (block height, round_)."""
        h = block.header.height
        proposer = self.genesis_set().proposer_for(h, Round(round_))
        p = Proposal(h, Round(round_), block, Round(valid_round), proposer)
        return replace(
            p, signature=self.signers[proposer].sign(proposal_bytes(CHAIN, p, block_hash(block)))
        )

    def genesis_set(self):  # type: ignore[no-untyped-def]
        from consensus.validators import ValidatorSet

        return ValidatorSet(self.genesis.validators)

    def carry_over(
        self,
        round_: int = 0,
        reason: str = "test",
        *,
        height: int = 1,
        ledger: Ledger | None = None,
        parent_hash: Hash | None = None,
        time_ms: int = 1000,
        last_commit=None,  # type: ignore[no-untyped-def]
    ) -> Block:
        """A valid carry-over block built by the proposer of (height, round_)."""
        ledger = ledger or genesis_ledger(self.genesis)
        proposer = self.genesis_set().proposer_for(Height(height), Round(round_))
        header = Header(
            chain_id=CHAIN,
            height=Height(height),
            round=Round(round_),
            time_ms=time_ms,
            parent_hash=parent_hash or genesis_hash(self.genesis),
            proposer=proposer,
            model_hash=ledger.model_hash,
            updates_root=updates_root((), ()),
            last_commit_hash=commit_hash(last_commit),
            ledger_root=Hash(bytes(HASH_SIZE)),
        )
        block = Block(header, (), (), "", None, (), reason, last_commit, ())
        root = ledger_root(apply_block(ledger, block))
        return replace(block, header=replace(header, ledger_root=root))


def make_cluster(
    n: int,
    *,
    powers: Sequence[int] | None = None,
    roles: Sequence[Sequence[str]] | None = None,
    expected_trainers: int | None = None,
    timeouts: Timeouts = TIMEOUTS,
) -> Cluster:
    """A fake-signed genesis of n members (default: all validator + trainer, power 1)."""
    signers = fake_signers(n)
    genesis = make_genesis(
        CHAIN,
        signers,
        powers=powers,
        roles=roles,
        timeouts=timeouts,
        initial_model_hash=hashlib.sha256(b"model-0").digest(),
        expected_trainers=expected_trainers,
    )
    return Cluster(genesis, signers, FakeVerifier.for_signers(signers))


def of_type(actions: Sequence[Action], kind: type) -> list:  # type: ignore[type-arg]
    """Actions of one class."""
    return [a for a in actions if isinstance(a, kind)]


def broadcasts(actions: Sequence[Action], kind: type) -> list:  # type: ignore[type-arg]
    """Broadcast messages of one class."""
    return [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, kind)]


def model_of(receipts: Sequence[UpdateReceipt]) -> Hash:
    """The fake aggregation: a hash of the receipts' blobs."""
    h = hashlib.sha256(b"agg")
    for r in receipts:
        h.update(r.blob_hash)
    return Hash(h.digest())


def message_event(message: object) -> Event:
    """Wrap a gossiped message into its Received event."""
    if isinstance(message, Vote):
        return VoteReceived(message)
    if isinstance(message, Proposal):
        return ProposalReceived(message)
    if isinstance(message, UpdateReceipt):
        return ReceiptReceived(message)
    if isinstance(message, Candidate):
        return CandidateReceived(message)
    if isinstance(message, Attestation):
        return AttestationReceived(message)
    raise TypeError(message)


@dataclass
class InstantNet:
    """Delivers every broadcast to every other core at once and answers the app side.

    `verdict(node, candidate)` decides each evaluation; `drop(src, dst, message)` loses a
    message. Timeouts are collected, never fired unless a test calls `fire_timeouts`.
    """

    cluster: Cluster
    cores: list[ConsensusCore]
    verdict: Callable[[int, Candidate], bool] = lambda node, c: True
    drop: Callable[[int, int, object], bool] = lambda src, dst, m: False
    now: float = 0.0
    max_height: int = 3
    commits: dict[int, list[Commit]] = field(default_factory=dict)
    timeouts: list[tuple[int, ScheduleTimeout]] = field(default_factory=list)
    log: list[tuple[int, Action]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue: deque[tuple[int, Event]] = deque()
        for i in range(len(self.cores)):
            self.commits[i] = []

    def start(self) -> None:
        """Start every core and run to quiescence."""
        for i in range(len(self.cores)):
            self.queue.append((i, Started()))
        self.run()

    def run(self, max_steps: int = 200_000) -> None:
        """Process queued events until none are left."""
        steps = 0
        while self.queue:
            steps += 1
            assert steps < max_steps, "no quiescence"
            node, event = self.queue.popleft()
            if self.cores[node].height > self.max_height:
                continue
            for action in self.cores[node].handle(event, self.now):
                self.log.append((node, action))
                self._execute(node, action)

    def _execute(self, node: int, action: Action) -> None:
        core = self.cores[node]
        if isinstance(action, Broadcast):
            for dst in range(len(self.cores)):
                if dst != node and not self.drop(node, dst, action.message):
                    self.queue.append((dst, message_event(action.message)))
        elif isinstance(action, ScheduleTimeout):
            self.timeouts.append((node, action))
        elif isinstance(action, Commit):
            self.commits[node].append(action)
        elif isinstance(action, StartTraining):
            blob = hashlib.sha256(f"update-{node}-{action.height}".encode()).digest()
            self.queue.append(
                (
                    node,
                    TrainingFinished(
                        action.height, action.base_model_hash, Hash(blob), 100, 0.5, 0.1
                    ),
                )
            )
        elif isinstance(action, BuildCandidate):
            candidate = Candidate(
                height=action.height,
                round=action.round,
                proposer=ValidatorIndex(node),
                base_model_hash=action.base_model_hash,
                model_hash=model_of(action.receipts),
                receipts=action.receipts,
                rejected=(),
                rule="fedavg",
            )
            self.queue.append((node, CandidateBuilt(candidate)))
        elif isinstance(action, EvaluateCandidate):
            from consensus.codec import candidate_hash

            chash = candidate_hash(action.candidate)
            improved = self.verdict(node, action.candidate)
            report = EvalReport(
                ValidatorIndex(node), chash, 50, 0.7, 0.6 if improved else 0.8, 0.5, 0.6
            )
            self.queue.append((node, CandidateEvaluated(chash, improved, report)))
        assert core is self.cores[node]

    def fire_timeouts(self, step=None) -> int:  # type: ignore[no-untyped-def]
        """Fire every collected timeout (optionally of one step) and run; return how many."""
        from consensus.events import TimeoutFired

        pending = [(n, t) for n, t in self.timeouts if step is None or t.step == step]
        self.timeouts = [(n, t) for n, t in self.timeouts if not (step is None or t.step == step)]
        for node, t in pending:
            self.now = max(self.now, t.delay_seconds)
            self.queue.append((node, TimeoutFired(t.height, t.round, t.step)))
        self.run()
        return len(pending)
