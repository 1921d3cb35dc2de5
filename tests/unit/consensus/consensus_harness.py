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
    Broadcast,
    Commit,
    Event,
    Started,
    TrainingFinished,
)
from consensus.genesis import make_genesis
from consensus.ledger import apply_block, genesis_ledger
from consensus.shell import (
    Aggregate,
    Evaluate,
    NodeShell,
    Publish,
    Request,
    StartTimer,
    StoreCommit,
    Train,
)
from consensus.signing import proposal_bytes, vote_bytes
from consensus.types import (
    HASH_SIZE,
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


def broadcasts(actions: Sequence[object], kind: type) -> list:  # type: ignore[type-arg]
    """Messages of one class that a core broadcast (Broadcast) or a shell published (Publish)."""
    return [
        a.message
        for a in actions
        if isinstance(a, Broadcast | Publish) and isinstance(a.message, kind)
    ]


def model_of(receipts: Sequence[UpdateReceipt]) -> Hash:
    """The fake aggregation: a hash of the receipts' blobs."""
    h = hashlib.sha256(b"agg")
    for r in receipts:
        h.update(r.blob_hash)
    return Hash(h.digest())


@dataclass
class InstantNet:
    """Runs each core in the real node shell; delivers every publish to every other node at
    once and answers the app side.

    `verdict(node, candidate)` decides each evaluation; `drop(src, dst, message)` loses a
    message; `tamper(src, message)` is what the others receive instead (a forger on the wire:
    the direct transport leaves these signatures to the core). Timers are collected, never fired unless a test calls `fire_timeouts`. `log`
    holds every shell request, with its node.
    """

    cluster: Cluster
    cores: list[ConsensusCore]
    verdict: Callable[[int, Candidate], bool] = lambda node, c: True
    drop: Callable[[int, int, object], bool] = lambda src, dst, m: False
    tamper: Callable[[int, object], object] = lambda src, m: m
    now: float = 0.0
    max_height: int = 3
    commits: dict[int, list[Commit]] = field(default_factory=dict)
    timeouts: list[tuple[int, StartTimer]] = field(default_factory=list)
    log: list[tuple[int, Request]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # an Event is fed to the core as is; a callable is a shell call (delivery, app answer)
        self.queue: deque[tuple[int, Event | Callable[[NodeShell], list[Request]]]] = deque()
        self.shells = [NodeShell(core) for core in self.cores]
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
            node, item = self.queue.popleft()
            if self.cores[node].height > self.max_height:
                continue
            shell = self.shells[node]
            requests = item(shell) if callable(item) else shell.feed(item, self.now)
            for request in requests:
                self.log.append((node, request))
                self._perform(node, request)

    def _perform(self, node: int, request: Request) -> None:
        now = self.now
        if isinstance(request, Publish):
            message = self.tamper(node, request.message)
            for dst in range(len(self.cores)):
                if dst != node and not self.drop(node, dst, message):
                    self.queue.append((dst, lambda s, m=message: s.deliver(m, now)))
        elif isinstance(request, StartTimer):
            self.timeouts.append((node, request))
        elif isinstance(request, StoreCommit):
            self.commits[node].append(request.commit)
        elif isinstance(request, Train):
            action = request.action
            blob = hashlib.sha256(f"update-{node}-{action.height}".encode()).digest()
            done = TrainingFinished(
                action.height, action.base_model_hash, Hash(blob), 100, 0.5, 0.1
            )
            self.queue.append((node, lambda s: s.trained(done, seconds=0.0, now=now)))
        elif isinstance(request, Aggregate):
            receipts = request.action.receipts
            self.queue.append(
                (
                    node,
                    lambda s: s.aggregated(
                        request,
                        accepted=receipts,
                        rejected=(),
                        model_hash=model_of(receipts),
                        now=now,
                    ),
                )
            )
        elif isinstance(request, Evaluate):
            improved = self.verdict(node, request.candidate)
            report = EvalReport(
                ValidatorIndex(node),
                request.candidate_hash,
                50,
                0.7,
                0.6 if improved else 0.8,
                0.5,
                0.6,
            )
            self.queue.append(
                (
                    node,
                    lambda s: s.evaluated(
                        request, improved=improved, report=report, seconds=0.0, now=now
                    ),
                )
            )

    def fire_timeouts(self, step=None) -> int:  # type: ignore[no-untyped-def]
        """Fire every collected timer (optionally of one step) and run; return how many."""
        pending = [(n, t) for n, t in self.timeouts if step is None or t.event.step == step]
        self.timeouts = [
            (n, t) for n, t in self.timeouts if not (step is None or t.event.step == step)
        ]
        for node, t in pending:
            self.now = max(self.now, t.delay)
            self.queue.append((node, t.event))
        self.run()
        return len(pending)
