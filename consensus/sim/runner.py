"""One seeded simulation run, and many: real `ConsensusCore`s in the real node shell, on a
virtual clock.

A run builds a genesis for N validators (every validator also trains), one core per node inside
the same `consensus.shell.NodeShell` the daemon runs, a seeded `SimNetwork`, and the fake
learning app, then pops the event queue in (time, seq) order. Every popped item is one *step*:
a delivery, a timer, an app answer, a gossip tick or a sync answer. After every step the
invariant checker has seen every commit and every honest signature the step produced, so a
violation names the exact step.

This module is the simulator's I/O adapter: it performs the shell's requests on the virtual
clock and the seeded network, as node/driver.py performs them with trio and libp2p.
- `Publish` goes to every other node through the network (and the node's behaviour, if faulty);
- `StartTimer` and the app's answers go on the queue (answers after a virtual delay);
- `FetchBlocks` asks every peer (or, for a periodic poll, the peer of that turn); a peer
  answers with up to `SYNC_BATCH` committed blocks and their commit certificates;
- ticks every `gossip_interval` drive the shell's re-send and sync-poll policy.

Liveness bound (where the issue is silent): each run must have every honest node at `--heights`
before `heal time + heights * per_height_seconds` of virtual time.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial

from consensus import codec
from consensus.events import Commit, GovernanceRequested, Message
from consensus.shell import (
    Aggregate,
    CountRejection,
    Evaluate,
    FetchBlocks,
    NodeShell,
    NoteEvidence,
    Publish,
    Request,
    ShellPolicy,
    StartTimer,
    StoreCommit,
    Train,
    signed_slot,
)
from consensus.sim.app import FakeLearningApp
from consensus.sim.byzantine import Adversary, make_behaviour
from consensus.sim.checker import InvariantChecker
from consensus.sim.config import RunResult, SimConfig
from consensus.sim.governance import JOIN_START, GovernanceScenario, extra_keys
from consensus.sim.items import (
    SimNode,
    SyncRequest,
    SyncResponse,
    _Built,
    _Evaluated,
    _Gossip,
    _GossipTick,
    _Start,
    _Timer,
    _Trained,
)
from consensus.sim.network import (
    Delivery,
    EventQueue,
    NetworkConditions,
    NodeId,
    Partition,
    SimNetwork,
)
from consensus.sim.setup import SimChain, build_chain
from consensus.sim.wire import Wire
from consensus.types import (
    GovernanceApproval,
    GovernanceProposal,
)
from consensus.validators import ValidatorSet

SYNC_BATCH = 8
BUILD_DELAY = 0.01  # virtual seconds the fake aggregation takes
EVALUATE_DELAY = 0.05  # ... and the fake evaluation


class Simulation:
    """One seeded run; call `run()` once."""

    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.rng = random.Random(seed)
        self.queue: EventQueue[object] = EventQueue()
        extra = extra_keys(config.governance)
        self.chain: SimChain = build_chain(config.validators, config.signer, seed, extra)
        self.step = 0
        self.now = 0.0
        self._trace = hashlib.sha256()
        self.evidence = 0
        self.rejections: Counter[str] = Counter()  # by reason, at honest nodes
        self.wire = Wire(config.validators)
        self.max_round = 0
        self.commit_certificate_bytes = 0
        self.improvement_certificate_bytes = 0
        self.model_blocks = 0
        self.carry_over_blocks = 0
        self.checker = InvariantChecker(self.chain.certificate_problem, seed=seed)
        # re-send and poll on every gossip tick of an idle height; a sync request is never
        # held back (the virtual network may drop it, and the next tick asks again)
        # the daemon's backoff between re-sends (x2, capped at 4 intervals: 12 s over 3 s)
        self._policy = ShellPolicy(
            resend_after=config.gossip_interval,
            resend_max=4 * config.gossip_interval,
            poll_when_idle=False,
            sync_timeout=0.0,
        )
        byzantine = self._pick_byzantine()
        self.adversary = Adversary(self.chain, byzantine, self.rng)
        honest = [m for m in range(config.validators) if m not in byzantine]
        self.scenario = (
            GovernanceScenario(config.governance, self.chain, honest, config.change_at)
            if config.governance
            else None
        )
        self.nodes: list[SimNode] = []
        for member in range(config.validators):
            copies = 2 if member in byzantine and config.behaviour == "twins" else 1
            for _ in range(copies):
                self._add_node(member, byzantine)
        if config.governance == "join":
            self._add_node(config.validators, byzantine, start_at=JOIN_START)
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

    def _add_node(self, member: int, byzantine: frozenset[int], start_at: float = 0.0) -> None:
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
        rotated = self.scenario.next_signers(member) if self.scenario is not None else ()
        shell = NodeShell(self.chain.make_core(member, rotated), policy=self._policy)
        self.nodes.append(SimNode(node_id, member, shell, app, behaviour, start_at=start_at))

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
            self.queue.push(node.start_at, _Start(node.node_id))
            self.queue.push(
                node.start_at
                + self.config.gossip_interval * (1 + node.node_id / (2 * len(self.nodes))),
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
        now = self.now
        if isinstance(item, Delivery):
            node = self.nodes[item.receiver]
            message = item.message
            if now < node.start_at:
                return  # a joiner's process is not up yet
            if isinstance(message, SyncRequest):
                self._trace_step(node.node_id, "sync-request")
                self._answer_sync(node, item.sender, message)
            elif isinstance(message, SyncResponse):
                self._trace_step(node.node_id, "sync-response")
                self._feed(node, lambda shell: shell.blocks_fetched(message.blocks, now))
            elif isinstance(message, _Gossip):
                self._trace_step(node.node_id, type(message.message).__name__, message.digest)
                tx = message.message
                if isinstance(tx, GovernanceProposal | GovernanceApproval):
                    self._feed(node, lambda shell: shell.deliver_governance(tx, now))
                else:
                    self._feed(node, lambda shell: shell.deliver(tx, now))
            return
        node = self.nodes[item.node]  # type: ignore[attr-defined]
        self._trace_step(node.node_id, type(item).__name__.strip("_"))
        if isinstance(item, _Start):
            self._feed(node, lambda shell: shell.start(now))
        elif isinstance(item, _Timer):
            self._feed(node, lambda shell: shell.fire(item.event, now))
        elif isinstance(item, _Trained):
            self._feed(node, lambda shell: shell.trained(item.event, seconds=item.seconds, now=now))
        elif isinstance(item, _Built):
            self._feed(
                node,
                lambda shell: shell.aggregated(
                    item.request,
                    accepted=item.accepted,
                    rejected=(),
                    model_hash=item.model_hash,
                    now=now,
                ),
            )
        elif isinstance(item, _Evaluated):
            self._feed(
                node,
                lambda shell: shell.evaluated(
                    item.request, improved=item.improved, report=item.report, seconds=0.0, now=now
                ),
            )
        elif isinstance(item, _GossipTick):
            self._feed(node, lambda shell: shell.tick(now))
            self.queue.push(now + self.config.gossip_interval, item)

    def _feed(self, node: SimNode, call: Callable[[NodeShell], list[Request]]) -> None:
        if node.behaviour is not None and node.behaviour.silent:
            return
        started = time.process_time()
        requests = call(node.shell)
        node.cpu_seconds += time.process_time() - started
        self._perform(node, requests)

    def _perform(self, node: SimNode, requests: Iterable[Request]) -> None:
        """The simulator's side of the shell's requests (PersistSigner: durable in memory;
        FetchUpdate: there are no blobs; CountRejection: counted by reason at honest nodes)."""
        now = self.now
        for request in requests:
            if isinstance(request, Publish):
                message = request.message
                if isinstance(message, GovernanceProposal | GovernanceApproval):
                    peers = [n.node_id for n in self.nodes if n.node_id != node.node_id]
                    if self.wire.fits(message):
                        wire = _Gossip(message, self.wire.digest(message))
                        self.network.send(now, node.node_id, peers, wire)
                    continue
                if not request.resend:
                    self._signed(node, message)
                self._send(node, message)
            elif isinstance(request, StartTimer):
                self.queue.push(now + request.delay, _Timer(node.node_id, request.event))
            elif isinstance(request, Train):
                delay, finished = node.app.train(request.action)
                self.queue.push(now + delay, _Trained(node.node_id, finished, delay))
            elif isinstance(request, Aggregate):
                accepted, model_hash = node.app.build(request.action)
                answer = _Built(node.node_id, request, accepted, model_hash)
                self.queue.push(now + BUILD_DELAY, answer)
            elif isinstance(request, Evaluate):
                improved, report = node.app.evaluate(request.candidate, request.candidate_hash)
                verdict = _Evaluated(node.node_id, request, improved, report)
                self.queue.push(now + EVALUATE_DELAY, verdict)
            elif isinstance(request, StoreCommit):
                self._commit(node, request.commit)
            elif isinstance(request, NoteEvidence):
                self.evidence += 1
            elif isinstance(request, CountRejection) and node.honest:
                self.rejections[request.reason] += 1
            elif isinstance(request, FetchBlocks):
                self._request_sync(node, request)

    def _signed(self, node: SimNode, message: Message) -> None:
        if node.honest:
            slot = signed_slot(message)
            height = int(message.height)
            self.checker.on_signed(self.step, node.member, height, slot, self.wire.digest(message))

    def _send(self, node: SimNode, message: Message) -> None:
        peers = [n.node_id for n in self.nodes if n.node_id != node.node_id]
        if node.behaviour is None:
            if self.wire.fits(message):
                self.network.send(
                    self.now, node.node_id, peers, _Gossip(message, self.wire.digest(message))
                )
            return
        for receivers, variant in node.behaviour.outgoing(message, peers, self.now):
            if self.wire.fits(variant):
                wire = _Gossip(variant, self.wire.digest(variant))
                self.network.send(self.now, node.node_id, receivers, wire)

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
        members = action.ledger.members
        height = int(block.height)
        if height not in self.chain.sets and members != self.chain.validator_set.members:
            self.chain.sets[height] = ValidatorSet(members)
        signers = self.chain.set_at(int(block.height)).indices(action.commit_certificate.signers)
        self.checker.on_commit(
            self.step,
            node.node_id,
            node.member,
            block.height,
            block_hash,
            block,
            parent_model,
            signers or (),
        )
        if self.scenario is not None:
            self.scenario.on_signers(int(block.height), tuple(signers or ()))
            now = self.now
            for request in self.scenario.on_commit(node.member, node.honest, block, action.ledger):
                self._feed(node, partial(_request_governance, request=request, now=now))
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

    def _request_sync(self, node: SimNode, request: FetchBlocks) -> None:
        peers = [n.node_id for n in self.nodes if n.node_id != node.node_id]
        if request.peer_turn is not None and peers:
            peers = [peers[request.peer_turn % len(peers)]]
        self.network.send(self.now, node.node_id, peers, SyncRequest(int(request.from_height)))

    def _answer_sync(self, node: SimNode, requester: NodeId, request: SyncRequest) -> None:
        if node.behaviour is not None and not node.behaviour.answers_sync:
            return
        first = max(1, request.from_height)
        blocks = tuple(node.chain[first - 1 : first - 1 + SYNC_BATCH])
        if blocks:
            self.network.send(self.now, node.node_id, [requester], SyncResponse(blocks))

    # -- results -----------------------------------------------------------------------------

    def _check_liveness(self, honest: list[SimNode]) -> None:
        if self.scenario is not None:
            committed = min((n.height for n in honest), default=0)
            self.checker.violations += self.scenario.check(self.step, committed, self.seed)
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
            rejections=dict(sorted(self.rejections.items())),
            max_message_bytes=dict(sorted(self.wire.max_message_bytes.items())),
            oversized_messages=dict(sorted(self.wire.oversized_messages.items())),
            reproposals=self.wire.reproposals,
            messages_sent=self.network.sent,
            messages_dropped=self.network.dropped,
            violations=list(self.checker.violations),
            trace_digest=self._trace.hexdigest(),
            governance=self.scenario.summary() if self.scenario is not None else {},
        )


def _request_governance(
    shell: NodeShell, *, request: GovernanceRequested, now: float
) -> list[Request]:
    return shell.request_governance(request, now)


def run_one(config: SimConfig, seed: int) -> RunResult:
    """Run one seeded simulation."""
    return Simulation(config, seed).run()
