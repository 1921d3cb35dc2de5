"""The consensus driver: the daemon's trio adapter around the node shell.

One trio task owns the shell (and the core inside it). Everything else (gossip handlers, timers,
the learning worker, catch-up) only queues shell calls into its memory channel, so the core is
never re-entered and needs no lock. The driver performs the shell's requests in order
(consensus/shell/requests.py): `PersistSigner` is durable before the `Publish` that carries
the new signature (docs/ARCHITECTURE.md "Safety on disk"), one write per shell step
(`coalesce_signer_writes`).

Services, each `run(self, *, task_status)`, started in the driver's nursery:
- `LearningWorker` (node/services/learning_worker.py): Train, Aggregate, Evaluate and blob
  fetches, off the event loop;
- `CatchUp` (node/services/catch_up.py): FetchBlocks, by block sync;
- `MetricsObserver` (node/services/observer.py): metrics of what passes here, and the periodic
  export of network and storage gauges;
- `Housekeeping` (same module): pruning of old blobs;
- the ticker below, which drives the shell's re-send and sync-poll policy.

Every time read goes through the injected clock (by default trio's clock, shifted to Unix
time), so the driver runs under trio's MockClock in tests.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import trio

from consensus import codec
from consensus.core import ConsensusCore
from consensus.crypto import Signer
from consensus.events import GovernanceRequested
from consensus.shell import (
    Aggregate,
    CountRejection,
    Evaluate,
    FetchBlocks,
    FetchUpdate,
    NodeShell,
    NoteEvidence,
    PersistSigner,
    Publish,
    Request,
    ShellPolicy,
    StartTimer,
    StoreCommit,
    Train,
)
from consensus.signing import sign_bytes
from consensus.sim.insider import REWRITE_KINDS, rewrite
from consensus.types import (
    EMPTY_SIGNATURE,
    Attestation,
    Candidate,
    GovernanceApproval,
    GovernanceProposal,
    Proposal,
    UpdateReceipt,
    Vote,
)
from learning.secagg.chained_model import transcript_hash_in_file
from node.app import LearningApp
from node.chain import Chain
from node.network import NodeNetwork, Topic
from node.secagg_wire import parent_hash_of
from node.services.catch_up import CatchUp
from node.services.learning_worker import LearningWorker, ShellCall
from node.services.observer import Housekeeping, MetricsObserver, NodeState
from node.services.secagg_round import SecAggKeys, SecAggRound, Setting
from node.store import ChainStore
from telemetry.metrics import NodeMetrics

log = logging.getLogger("bcfl.driver")

TICK_S = 3.0  # how often the shell may re-send and poll for blocks (its resend_after)
MESSAGES = (Proposal, Vote, UpdateReceipt, Candidate, Attestation)  # what the shell takes


def trio_unix_clock() -> Callable[[], float]:
    """Unix seconds read from trio's clock (call inside `trio.run`): MockClock drives it."""
    offset = time.time() - trio.current_time()
    return lambda: offset + trio.current_time()


def coalesce_signer_writes(requests: Sequence[Request]) -> Sequence[Request]:
    """One durable signer-state write per shell step: the step's last `PersistSigner`, in
    place of its first, and the others dropped.

    Sound because the guard's states only move forward (consensus/guard.py): each state of a
    step is derived from the one before by `check_sign`, `check_attest` or `with_lock`, so the
    last one refuses everything an earlier one refuses, and writing it before the first
    `Publish` it protects makes every message of the step durable-before-sent, as one write
    per message did. A crash right after the write leaves the guard ahead of what was sent
    (the node stays silent at those positions in this round), the same as a crash between a
    write and its `Publish` would. In an 8-node devnet it saves one write (a thread hand-off
    and an fsync) of about four a height: over 75 heights, 82 of the 219 steps that persist
    held two writes.
    """
    persists = [i for i, request in enumerate(requests) if isinstance(request, PersistSigner)]
    if len(persists) < 2:
        return requests
    first, last = persists[0], persists[-1]
    dropped = set(persists[1:])
    return [
        requests[last] if i == first else request
        for i, request in enumerate(requests)
        if i not in dropped
    ]


class Driver:
    """Runs one node's shell against the network, the store and the learning app."""

    def __init__(
        self,
        *,
        core: ConsensusCore,
        store: ChainStore,
        net: NodeNetwork,
        app: LearningApp | None,
        metrics: NodeMetrics,
        is_trainer: bool,
        keep_last_models: int = 10,
        equivocator: Signer | None = None,
        insider: tuple[str, Signer] | None = None,
        on_height: Callable[[int, int], None] = lambda h, r: None,
        on_members: Callable[[ConsensusCore], None] = lambda core: None,
        clock: Callable[[], float] | None = None,
        secagg: SecAggKeys | None = None,
        decoded: Callable[[Topic, bytes], object] | None = None,
    ) -> None:
        self.core = core
        # the edge's decoded message for accepted bytes (node/gossip_validation.py), so a
        # message is not decoded twice; None: decode here
        self._decoded = decoded
        self.store = store
        self.chain = Chain(store)
        self.net = net
        self.metrics = metrics
        self.equivocator = equivocator
        # test networks only: an insider kind of consensus/sim/insider.py rewrites what we send
        self.insider = insider if insider is not None and insider[0] in REWRITE_KINDS else None
        self.publish_failures: Counter[str] = Counter()  # topic -> publishes that failed
        self.on_height = on_height
        self.on_members = on_members  # the member set or its changes moved (peer gating)
        self._members = self._membership()
        self._clock = clock
        policy = ShellPolicy(resend_after=TICK_S)
        self.shell = NodeShell(core, trains=is_trainer and app is not None, policy=policy)
        self._send, self._receive = trio.open_memory_channel[ShellCall](10_000)
        self.worker = LearningWorker(
            app=app,
            chain=self.chain,
            net=net,
            genesis=core.genesis,
            metrics=metrics,
            clock=self.clock,
            answer=self.submit,
        )
        self.secagg = None if secagg is None else self._secagg(secagg)
        self.worker.secagg = self.secagg
        self.observer = MetricsObserver(
            metrics=metrics,
            net=net,
            store=store,
            metric_name=app.task.metric if app is not None else None,
            evaluations=self.worker.evaluations,
        )
        self.catch_up = CatchUp(
            net=net, metrics=metrics, answer=self.submit, on_state=self.observer.sync_state
        )
        self.housekeeping = Housekeeping(
            store=store,
            metrics=metrics,
            keep_last_models=keep_last_models,
            pinned=lambda: [core.genesis.initial_model_hash, core.model_hash],
        )
        self._nursery: trio.Nursery | None = None

    def _secagg(self, keys: SecAggKeys) -> SecAggRound:
        """This node's side of secure aggregation (node/services/secagg_round.py)."""
        core = self.core

        def setting() -> Setting:
            parent = parent_hash_of(core.genesis, core.last_block)
            return Setting(int(core.height), core.validator_set, parent)

        round_ = SecAggRound(
            genesis=core.genesis,
            me=lambda: None if core.me is None else int(core.me),
            agreement_key=keys.agreement_key,
            signer=keys.signer,
            verifier=keys.verifier,
            reveal_log=keys.reveal_log,
            setting=setting,
            fetch=lambda blob_hash, author: self.worker.blob(blob_hash, author),
            publish=self._gossip,
            cap=self.net.settings.size_caps[Topic.SECAGG],
            wait_s=keys.wait_s,
            count=self.metrics.count_core_rejection,
            silent=keys.silent,
        )
        self.net.set_validator(Topic.SECAGG, round_.validate)
        return round_

    @property
    def state(self) -> NodeState:
        """What the HTTP API and `bcfl status` show."""
        return self.observer.state

    def clock(self) -> float:
        """Unix seconds on the injected clock."""
        if self._clock is None:
            self._clock = trio_unix_clock()
        return self._clock()

    # ------------------------------------------------------------------ service

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe to gossip, start the services and the shell, then process shell calls."""
        for topic in (Topic.CONSENSUS, Topic.RECEIPTS, Topic.CANDIDATES, Topic.ATTESTATIONS):
            self.net.subscribe(topic, functools.partial(self._on_gossip, topic=topic))
        self.net.subscribe(Topic.GOVERNANCE, self._on_governance)
        if self.secagg is not None:
            self.net.subscribe(Topic.SECAGG, self.secagg.on_gossip)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for service in (self.worker, self.catch_up, self.observer, self.housekeeping):
                await nursery.start(service.run)
            nursery.start_soon(self._ticker)
            await self._call(lambda shell, now: shell.start(now))
            task_status.started()
            async for call in self._receive:
                await self._call(call)

    def submit(self, call: ShellCall) -> None:
        """Queue a shell call from any task on the event loop."""
        self._send.send_nowait(call)

    async def _call(self, call: ShellCall) -> None:
        requests = call(self.shell, self.clock())
        await self._perform(requests)
        core = self.core
        membership = self._membership()
        if membership != self._members:
            self._members = membership
            self.on_members(core)
        self.on_height(int(core.height), int(core.round))
        self.metrics.set_round(int(core.round))
        self.metrics.enter_step(int(core.height), int(core.round), core.step.name.lower())

    async def _on_gossip(self, data: bytes, origin: str, *, topic: Topic | None = None) -> None:
        """Decode an accepted gossip message and hand it to the shell (the edge checked it)."""
        message = None
        if self._decoded is not None and topic is not None:
            message = self._decoded(topic, data)
        try:
            if message is None:
                message = codec.decode_message(data)
        except codec.InvalidMessage as exc:  # the validator let it through: count, never crash
            log.warning("dropping undecodable gossip from %s: %s", origin, exc.reason)
            return
        if not isinstance(message, MESSAGES):
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("recv %s %s", type(message).__name__, codec.sha256(data).hex()[:12])
        self.observer.delivered(message)
        self.submit(lambda shell, now: shell.deliver(message, now))

    async def _on_governance(self, data: bytes, origin: str) -> None:
        """A governance proposal or approval the edge accepted (consensus/governance.py)."""
        try:
            tx = codec.decode(data, expected=(GovernanceProposal, GovernanceApproval))
        except codec.InvalidMessage as exc:
            log.warning("dropping undecodable governance gossip from %s: %s", origin, exc.reason)
            return
        self.submit(lambda shell, now: shell.deliver_governance(tx, now))

    def _membership(self) -> tuple[object, ...]:
        ledger = self.core.ledger
        return (self.core.validator_set.members, ledger.pending, ledger.scheduled)

    def request_governance(self, request: GovernanceRequested) -> None:
        """The operator's proposal or approval (the HTTP API's POST routes)."""
        self.submit(lambda shell, now: shell.request_governance(request, now))

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(TICK_S)
            connected = bool(self.net.peers())
            self.submit(partial(NodeShell.tick, connected=connected))

    # ------------------------------------------------------------------ requests

    async def _perform(self, requests: Sequence[Request]) -> None:
        nursery = self._nursery
        assert nursery is not None
        for request in coalesce_signer_writes(requests):
            if isinstance(request, PersistSigner):
                started = self.clock()
                # durable before the next request (the Publish it protects); fsync off the loop
                state = codec.encode(request.state)
                await trio.to_thread.run_sync(self.store.save_signer_state, state)
                self.metrics.observe_store_write("signer_state", self.clock() - started)
            elif isinstance(request, Publish):
                await self._publish(request)
            elif isinstance(request, StartTimer):
                nursery.start_soon(self._timer, request)
            elif isinstance(request, FetchUpdate):
                self.worker.prefetch(request.blob_hash, request.author)
            elif isinstance(request, Train):
                self.worker.train(request)
            elif isinstance(request, Aggregate):
                self.worker.aggregate(request)
            elif isinstance(request, Evaluate):
                self.worker.evaluate(request)
            elif isinstance(request, StoreCommit):
                self._store(request)
            elif isinstance(request, FetchBlocks):
                self.catch_up.request(request)
            elif isinstance(request, CountRejection):
                self.observer.rejected(request)
            elif isinstance(request, NoteEvidence):
                self.observer.evidence(request)

    async def _publish(self, request: Publish) -> None:
        if self.insider is not None:
            for message in rewrite(self.insider[0], request.message, self._resign):
                if message is request.message:
                    await self._publish_one(request)
                else:
                    await self._publish_rewritten(Topic(request.topic), message)
            return
        await self._publish_one(request)

    async def _publish_rewritten(self, topic: Topic, message: Any) -> None:
        """Test networks only: an insider's rewritten message, past our own topic validators
        (they would refuse it here, and the point is that the honest nodes do)."""
        from node.byzantine import publish_unchecked

        try:
            await publish_unchecked(
                self.net, self.core.genesis.chain_id, topic, codec.encode_message(message)
            )
        except Exception as exc:
            self.publish_failures[topic.value] += 1
            log.warning("could not publish a rewritten %s: %s", type(message).__name__, exc)

    def _resign(self, message: Any) -> Any:
        """Test networks only: `message` re-signed with our key, outside the signer guard."""
        assert self.insider is not None
        chain_id = self.core.genesis.chain_id
        unsigned = replace(message, signature=EMPTY_SIGNATURE)
        return replace(unsigned, signature=self.insider[1].sign(sign_bytes(chain_id, unsigned)))

    async def _publish_one(self, request: Publish) -> None:
        message = request.message
        data = codec.encode(message)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("send %s %s", type(message).__name__, codec.sha256(data).hex()[:12])
        self.observer.published(request)
        if not await self._gossip(Topic(request.topic), data):
            return
        if (
            self.equivocator is not None
            and not request.resend
            and isinstance(message, Vote)
            and message.block_hash
        ):
            await self._equivocate(message)

    async def _equivocate(self, vote: Vote) -> None:
        """Test networks only (`byzantine.behaviour = "equivocate"`): also vote nil, signed.

        The core's signer guard would refuse this, which is the point: the conflicting vote is
        signed here, outside the core, with the same key, so honest nodes see real evidence.
        """
        assert self.equivocator is not None
        twin = replace(vote, block_hash=None, signature=EMPTY_SIGNATURE)
        chain_id = self.core.genesis.chain_id
        twin = replace(twin, signature=self.equivocator.sign(sign_bytes(chain_id, twin)))
        await self._gossip(Topic.CONSENSUS, codec.encode_message(twin))

    async def _gossip(self, topic: Topic, data: bytes) -> bool:
        """Gossip `data`; a failure (a message over its topic cap, a pubsub error) is logged
        and counted, never the end of the process: the shell re-sends what we signed, and
        the core's timeouts move the height on (docs/THREAT-MODEL.md "Oversized proposals")."""
        try:
            await self.net.publish(topic, data)  # counted by the network's counters
        except Exception as exc:
            self.publish_failures[topic.value] += 1
            log.warning("could not publish a %d-byte %s message: %s", len(data), topic.value, exc)
            return False
        return True

    async def _timer(self, request: StartTimer) -> None:
        await trio.sleep(request.delay)
        event = request.event
        self.submit(lambda shell, now: shell.fire(event, now))

    def _transcript(self, request: StoreCommit) -> tuple[bytes, ...]:
        """Under secure aggregation, the transcript a local model blob names (kept and
        pruned with its block's blobs, for `bcfl chain verify`)."""
        block = request.commit.block
        if self.secagg is None or block.is_carry_over:
            return ()
        path = self.store.blobs.path(block.header.model_hash)
        found = transcript_hash_in_file(path) if path.exists() else None
        return () if found is None else (found,)

    def _store(self, request: StoreCommit) -> None:
        started = self.clock()
        self.chain.append(
            request.commit, phases=request.phases, extra_refs=self._transcript(request)
        )
        self.observer.committed(request, store_seconds=self.clock() - started)
        model_hash = request.commit.block.header.model_hash
        if not self.chain.has_blob(model_hash):
            self.worker.prefetch(model_hash, None)


__all__ = ["Driver", "trio_unix_clock"]
