"""One seeded simulation run, and many: real `ConsensusCore`s on a virtual clock.

A run builds a genesis for N validators (every validator also trains), one core per node, a
seeded `SimNetwork`, and the fake learning app, then pops the event queue in (time, seq) order.
Every popped item is one *step*: a delivery, a timer, an app answer, a gossip tick or a sync
answer. After every step the invariant checker has seen every commit and every honest signature
the step produced, so a violation names the exact step.

The node shell here does what `node/` will do around a core, minus I/O:
- executes actions in order (timers on the queue, app answers after a virtual delay);
- gossip re-sends: a node whose height did not advance for a gossip interval re-sends the
  messages it signed at its current height (byte-identical, so never an equivocation), as
  CometBFT's gossip routines re-send votes a peer lacks; without this, lost messages would only
  be recovered by round changes;
- block sync: `RequestSync(from)` asks every peer; a peer answers with up to `SYNC_BATCH`
  committed blocks and their commit certificates, fed back as `BlockSynced`.

Liveness bound (where the issue is silent): each run must have every honest node at `--heights`
before `heal time + heights * per_height_seconds` of virtual time.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consensus import codec
from consensus.events import (
    Action,
    BlockSynced,
    Broadcast,
    BuildCandidate,
    Commit,
    EvaluateCandidate,
    Event,
    Message,
    PersistSignerState,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    Started,
    StartTraining,
    TimeoutFired,
    received,
)
from consensus.sim.app import FakeLearningApp
from consensus.sim.byzantine import Adversary, Behaviour, make_behaviour
from consensus.sim.checker import InvariantChecker
from consensus.sim.config import RunResult, SimConfig
from consensus.sim.network import (
    Delivery,
    EventQueue,
    NetworkConditions,
    NodeId,
    Partition,
    SimNetwork,
)
from consensus.sim.setup import SimChain, build_chain
from consensus.types import (
    Attestation,
    Block,
    Candidate,
    CommitCertificate,
    Proposal,
    UpdateReceipt,
    Vote,
)

SYNC_BATCH = 8


@dataclass(frozen=True, slots=True)
class _Timer:
    node: NodeId
    event: TimeoutFired


@dataclass(frozen=True, slots=True)
class _Local:
    node: NodeId
    event: Event


@dataclass(frozen=True, slots=True)
class _GossipTick:
    node: NodeId


@dataclass(frozen=True, slots=True)
class _Gossip:
    """A core message on the wire, with its digest computed once per send (for the trace)."""

    message: Message
    digest: bytes


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Simulator wire message: send me committed blocks from `from_height` on."""

    from_height: int


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """Simulator wire message: committed blocks with their commit certificates."""

    blocks: tuple[tuple[Block, CommitCertificate], ...]


@dataclass
class SimNode:
    """One simulated process: a core, its app, its behaviour, and what it committed."""

    node_id: NodeId
    member: int
    core: Any
    app: FakeLearningApp
    behaviour: Behaviour | None
    chain: list[tuple[Block, CommitCertificate]] = field(default_factory=list)
    signed: dict[tuple[Any, ...], Message] = field(default_factory=dict)
    height_at_last_tick: int = -1
    highest_seen: int = 0
    cpu_seconds: float = 0.0

    @property
    def honest(self) -> bool:
        return self.behaviour is None

    @property
    def height(self) -> int:
        return len(self.chain)


def signed_slot(message: Message) -> tuple[Any, ...] | None:
    """(kind, height, ...) under which a signer may sign only one value (height always 2nd)."""
    if isinstance(message, Vote):
        return ("vote", message.height, message.round, int(message.vote_type))
    if isinstance(message, Proposal):
        return ("proposal", message.height, message.round)
    if isinstance(message, Candidate):
        return ("candidate", message.height, message.round)
    if isinstance(message, Attestation):
        return ("attestation", message.height, bytes(message.candidate_hash))
    if isinstance(message, UpdateReceipt):
        return ("receipt", message.height, bytes(message.base_model_hash))
    return None


def _digest(message: Any) -> bytes:
    return hashlib.sha256(codec.encode_message(message)).digest()


class Simulation:
    """One seeded run; call `run()` once."""

    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.rng = random.Random(seed)
        self.queue: EventQueue[object] = EventQueue()
        self.chain: SimChain = build_chain(config.validators, config.signer, seed)
        self.step = 0
        self.now = 0.0
        self._trace = hashlib.sha256()
        self._digests: dict[int, tuple[Message, bytes]] = {}
        self.evidence = 0
        self.max_round = 0
        self.commit_certificate_bytes = 0
        self.improvement_certificate_bytes = 0
        self.model_blocks = 0
        self.carry_over_blocks = 0
        self.checker = InvariantChecker(self.chain.certificate_problem, seed=seed)
        byzantine = self._pick_byzantine()
        self.adversary = Adversary(self.chain, byzantine, self.rng)
        self.nodes: list[SimNode] = []
        for member in range(config.validators):
            copies = 2 if member in byzantine and config.behaviour == "twins" else 1
            for _ in range(copies):
                self._add_node(member, byzantine)
        self.partition = self._plan_partition(byzantine)
        self.adversary.set_sides(self.nodes, self.partition)
        conditions = NetworkConditions(
            drop=config.drop,
            delay_min=config.delay_min,
            delay_max=config.delay_max,
            duplicate=config.duplicate,
            reorder=config.reorder,
            partition=self.partition,
        )
        self.network: SimNetwork[object] = SimNetwork(conditions, self.rng, self.queue)
        heal = self.partition.end if self.partition is not None else 0.0
        self.deadline = heal + config.heights * config.per_height_seconds

    # -- set-up ------------------------------------------------------------------------------

    def _pick_byzantine(self) -> frozenset[int]:
        members = list(range(self.config.validators))
        self.rng.shuffle(members)
        return frozenset(members[: self.config.byzantine])

    def _add_node(self, member: int, byzantine: frozenset[int]) -> None:
        node_id = len(self.nodes)
        behaviour = (
            make_behaviour(self.config.behaviour, self.adversary, node_id, member)
            if member in byzantine
            else None
        )
        app = FakeLearningApp(
            member,
            self.rng,
            self.chain.genesis.aggregation_rule,
            self.config.training_delay,
        )
        core = self.chain.make_core(member)
        self.nodes.append(SimNode(node_id, member, core, app, behaviour))

    def _plan_partition(self, byzantine: frozenset[int]) -> Partition | None:
        if not self.config.partition:
            return None
        start = self.rng.uniform(*self.config.partition_start)
        length = self.rng.uniform(*self.config.partition_length)
        honest = [n.node_id for n in self.nodes if n.honest]
        self.rng.shuffle(honest)
        side_a = set(honest[: (len(honest) + 1) // 2])
        bridges: set[NodeId] = set()
        seen_twin: set[int] = set()
        for node in self.nodes:
            if node.honest:
                continue
            if self.config.behaviour == "twins":
                # Twins: the first copy on side A, the second on side B.
                if node.member not in seen_twin:
                    seen_twin.add(node.member)
                    side_a.add(node.node_id)
            else:
                bridges.add(node.node_id)
        return Partition(start, start + length, frozenset(side_a), frozenset(bridges))

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> RunResult:
        for node in self.nodes:
            self.queue.push(0.0, _Local(node.node_id, Started()))
            self.queue.push(
                self.config.gossip_interval * (1 + node.node_id / (2 * len(self.nodes))),
                _GossipTick(node.node_id),
            )
        honest = [n for n in self.nodes if n.honest]
        while len(self.queue) and self.step < self.config.max_steps:
            if all(n.height >= self.config.heights for n in honest):
                break
            at, item = self.queue.pop()
            if at > self.deadline:
                break
            self.now = at
            self.step += 1
            self._dispatch(item)
        self._check_liveness(honest)
        return self._result(honest)

    def _trace_step(self, node: NodeId, kind: str, extra: bytes = b"") -> None:
        self._trace.update(f"{self.step}|{self.now!r}|{node}|{kind}|".encode())
        self._trace.update(extra)

    def _dispatch(self, item: object) -> None:
        if isinstance(item, Delivery):
            node = self.nodes[item.receiver]
            message = item.message
            if isinstance(message, SyncRequest):
                self._trace_step(node.node_id, "sync-request")
                self._answer_sync(node, item.sender, message)
            elif isinstance(message, SyncResponse):
                self._trace_step(node.node_id, "sync-response")
                for block, certificate in message.blocks:
                    if block.height == node.height + 1:
                        self._feed(node, BlockSynced(block, certificate))
            elif isinstance(message, _Gossip):
                self._trace_step(node.node_id, type(message.message).__name__, message.digest)
                node.highest_seen = max(node.highest_seen, int(message.message.height))
                self._feed(node, received(message.message))
        elif isinstance(item, _Timer | _Local):
            node = self.nodes[item.node]
            self._trace_step(node.node_id, type(item.event).__name__)
            self._feed(node, item.event)
        elif isinstance(item, _GossipTick):
            node = self.nodes[item.node]
            self._trace_step(node.node_id, "tick")
            self._gossip_tick(node)
            self.queue.push(self.now + self.config.gossip_interval, item)

    def _feed(self, node: SimNode, event: Event) -> None:
        if node.behaviour is not None and node.behaviour.silent:
            return
        started = time.process_time()
        actions = node.core.handle(event, self.now)
        node.cpu_seconds += time.process_time() - started
        self._execute(node, actions)

    def _execute(self, node: SimNode, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                self._broadcast(node, action.message)
            elif isinstance(action, ScheduleTimeout):
                event = TimeoutFired(action.height, action.round, action.step)
                self.queue.push(self.now + action.delay_seconds, _Timer(node.node_id, event))
            elif isinstance(action, StartTraining):
                delay, finished = node.app.train(action)
                self.queue.push(self.now + delay, _Local(node.node_id, finished))
            elif isinstance(action, BuildCandidate):
                self.queue.push(self.now + 0.01, _Local(node.node_id, node.app.build(action)))
            elif isinstance(action, EvaluateCandidate):
                answer = node.app.evaluate(action, codec.candidate_hash(action.candidate))
                self.queue.push(self.now + 0.05, _Local(node.node_id, answer))
            elif isinstance(action, Commit):
                self._commit(node, action)
            elif isinstance(action, ReportEvidence):
                self.evidence += 1
            elif isinstance(action, RequestSync):
                self._request_sync(node, action.from_height)
            elif isinstance(action, PersistSignerState):
                pass  # durable by construction in memory

    def _broadcast(self, node: SimNode, message: Message) -> None:
        slot = signed_slot(message)
        if slot is not None:
            node.signed[slot] = message
            if node.honest:
                self.checker.on_signed(
                    self.step,
                    node.member,
                    int(getattr(message, "height", 0)),
                    slot,
                    self._digest(message),
                )
        self._send(node, message)

    def _send(self, node: SimNode, message: Message) -> None:
        peers = [n.node_id for n in self.nodes if n.node_id != node.node_id]
        if node.behaviour is None:
            self.network.send(
                self.now, node.node_id, peers, _Gossip(message, self._digest(message))
            )
            return
        for receivers, variant in node.behaviour.outgoing(message, peers, self.now):
            wire = _Gossip(variant, self._digest(variant))
            self.network.send(self.now, node.node_id, receivers, wire)

    def _digest(self, message: Message) -> bytes:
        """SHA-256 of the canonical encoding, cached per message object for this run."""
        cached = self._digests.get(id(message))
        if cached is None:
            cached = (message, _digest(message))  # keeps the object alive: its id stays unique
            self._digests[id(message)] = cached
        return cached[1]

    def _commit(self, node: SimNode, action: Commit) -> None:
        block = action.block
        if block.height != node.height + 1:
            # The core promises one Commit per height, in order: anything else is its bug.
            self.checker.on_commit_out_of_order(
                self.step, node.member, int(block.height), node.height + 1
            )
            return
        parent_model = (
            node.chain[-1][0].header.model_hash
            if node.chain
            else self.chain.genesis.initial_model_hash
        )
        node.chain.append((block, action.commit_certificate))
        block_hash = codec.block_hash(block)
        self._trace_step(node.node_id, "commit", block_hash)
        self.checker.on_commit(
            self.step,
            node.node_id,
            node.member,
            block.height,
            block_hash,
            block,
            parent_model,
            self.chain.validator_set.indices(action.commit_certificate.signers) or (),
        )
        self.max_round = max(self.max_round, int(action.commit_certificate.round))
        size = len(codec.encode(action.commit_certificate))
        self.commit_certificate_bytes = max(self.commit_certificate_bytes, size)
        if block.improvement_certificate is not None:
            size = len(codec.encode(block.improvement_certificate))
            self.improvement_certificate_bytes = max(self.improvement_certificate_bytes, size)
        if node.honest and node.node_id == self._first_honest():
            if block.is_carry_over:
                self.carry_over_blocks += 1
            else:
                self.model_blocks += 1

    def _first_honest(self) -> int:
        return next((n.node_id for n in self.nodes if n.honest), -1)

    def _gossip_tick(self, node: SimNode) -> None:
        if node.behaviour is not None and node.behaviour.silent:
            return
        if node.height == node.height_at_last_tick:
            current = node.height + 1
            for slot, message in sorted(node.signed.items(), key=lambda kv: repr(kv[0])):
                if slot[1] == current:
                    self._send(node, message)
            if node.highest_seen > current:
                # Peers are at a later height: ask for the blocks we missed, as the node's
                # block-sync service does periodically (the core asks once per round).
                self._request_sync(node, current)
        node.height_at_last_tick = node.height
        stale = [slot for slot in node.signed if slot[1] <= node.height]
        for slot in stale:
            del node.signed[slot]

    def _request_sync(self, node: SimNode, from_height: int) -> None:
        peers = [n.node_id for n in self.nodes if n.node_id != node.node_id]
        self.network.send(self.now, node.node_id, peers, SyncRequest(from_height))

    def _answer_sync(self, node: SimNode, requester: NodeId, request: SyncRequest) -> None:
        if node.behaviour is not None and not node.behaviour.answers_sync:
            return
        first = max(1, request.from_height)
        blocks = tuple(node.chain[first - 1 : first - 1 + SYNC_BATCH])
        if blocks:
            self.network.send(self.now, node.node_id, [requester], SyncResponse(blocks))

    # -- results -----------------------------------------------------------------------------

    def _check_liveness(self, honest: list[SimNode]) -> None:
        stuck = [n for n in honest if n.height < self.config.heights]
        if stuck:
            lowest = min(n.height for n in stuck)
            self.checker.on_liveness_failure(
                self.step,
                lowest + 1,
                sorted({n.member for n in stuck}),
                f"{len(stuck)} honest node(s) below height {self.config.heights} at virtual "
                f"time {self.now:.1f}s (bound {self.deadline:.1f}s); lowest at {lowest}",
            )

    def _result(self, honest: list[SimNode]) -> RunResult:
        committed = min((n.height for n in honest), default=0)
        return RunResult(
            seed=self.seed,
            committed_height=committed,
            target_height=self.config.heights,
            max_round=self.max_round,
            steps=self.step,
            virtual_seconds=self.now,
            cpu_seconds=sum(n.cpu_seconds for n in honest),
            honest_validators=len(honest),
            commit_certificate_bytes=self.commit_certificate_bytes,
            improvement_certificate_bytes=self.improvement_certificate_bytes,
            model_blocks=self.model_blocks,
            carry_over_blocks=self.carry_over_blocks,
            evidence=self.evidence,
            messages_sent=self.network.sent,
            messages_dropped=self.network.dropped,
            violations=list(self.checker.violations),
            trace_digest=self._trace.hexdigest(),
        )


def run_one(config: SimConfig, seed: int) -> RunResult:
    """Run one seeded simulation."""
    return Simulation(config, seed).run()
