"""The consensus driver: feeds events into the sans-IO core and executes its actions.

One trio task owns the core. Everything else (gossip handlers, timers, worker threads, sync)
only sends events into its memory channel, so the core is never re-entered and needs no lock.
Actions are executed in order: `PersistSignerState` is durable before the `Broadcast` that
carries the new signature (DESIGN.md "Wire and storage formats").

Training, aggregation and evaluation run in worker threads (`trio.to_thread`) after their blobs
were fetched, so a node whose trainer is slow still votes. The driver is also where metrics are
recorded from the events and actions passing through (the cores stay metric-free), and where
the per-height phase timings of DESIGN.md's steps 1-6 are measured (`node/phases.py`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import trio

from consensus import codec
from consensus.core import ConsensusCore
from consensus.crypto import Signer
from consensus.events import (
    Action,
    BlockSynced,
    Broadcast,
    BuildCandidate,
    CandidateBuilt,
    CandidateEvaluated,
    CandidateReceived,
    Commit,
    EvaluateCandidate,
    Event,
    Message,
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
    received,
)
from consensus.types import (
    EMPTY_SIGNATURE,
    Attestation,
    Block,
    Candidate,
    CommitCertificate,
    Hash,
    Proposal,
    UpdateReceipt,
    Vote,
    VoteType,
)
from node.app import LearningApp
from node.network import BlobUnavailableError, NodeNetwork, Topic
from node.phases import PHASES, DriverState, HeightTimes
from node.store import ChainStore
from telemetry import labels
from telemetry.metrics import NodeMetrics
from telemetry.storage import measure_store

log = logging.getLogger("bcfl.driver")

TOPIC_OF: dict[type, Topic] = {
    Proposal: Topic.CONSENSUS,
    Vote: Topic.CONSENSUS,
    UpdateReceipt: Topic.RECEIPTS,
    Candidate: Topic.CANDIDATES,
    Attestation: Topic.ATTESTATIONS,
}
TOPIC_MESSAGES = tuple(TOPIC_OF)
BLOB_FETCH_TIMEOUT_S = 30.0
SYNC_POLL_S = 3.0
PRUNE_EVERY_S = 60


class Driver:
    """Runs one node's consensus core against the network, the store and the learning app."""

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
        on_height: Callable[[int, int], None] = lambda h, r: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.store = store
        self.net = net
        self.app = app
        self.metrics = metrics
        self.is_trainer = is_trainer and app is not None
        self.keep_last_models = keep_last_models
        self.equivocator = equivocator
        self.on_height = on_height
        self.clock = clock
        self.state = DriverState()
        self._send, self._receive = trio.open_memory_channel[Event](10_000)
        self._nursery: trio.Nursery | None = None
        self._times = HeightTimes(start=time.monotonic())
        self._syncing = False
        self._last_commit_at: float | None = None
        self._evaluations: dict[Hash, dict[str, float]] = {}
        self._precommitted: dict[int, set[int]] = {}  # height -> validators whose precommit we saw
        self._sent: list[Message] = []  # what we signed at the current height, for re-sending

    # ------------------------------------------------------------------ service

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe to gossip, start the core, then process events until cancelled."""
        for topic in (Topic.CONSENSUS, Topic.RECEIPTS, Topic.CANDIDATES, Topic.ATTESTATIONS):
            self.net.subscribe(topic, self._on_gossip)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._housekeeping)
            nursery.start_soon(self._watchdog)
            await self._handle(Started())
            task_status.started()
            async for event in self._receive:
                await self._handle(event)

    def submit(self, event: Event) -> None:
        """Queue an event from any task on the event loop."""
        self._send.send_nowait(event)

    async def _handle(self, event: Event) -> None:
        self._mark(event)
        actions = self.core.handle(event, self.clock())
        for action in actions:
            await self._execute(action)
        self.on_height(int(self.core.height), int(self.core.round))
        self.metrics.set_round(int(self.core.round))
        self.metrics.enter_step(
            int(self.core.height), int(self.core.round), self.core.step.name.lower()
        )

    # ------------------------------------------------------------------ gossip in

    async def _on_gossip(self, data: bytes, origin: str) -> None:
        """Decode an accepted gossip message into an event (the topic validator checked it)."""
        try:
            message = codec.decode_message(data)
        except codec.InvalidMessage as exc:  # the validator let it through: count, never crash
            log.warning("dropping undecodable gossip from %s: %s", origin, exc.reason)
            return
        event = received(message) if isinstance(message, TOPIC_MESSAGES) else None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("recv %s %s", type(message).__name__, codec.sha256(data).hex()[:12])
        if isinstance(message, UpdateReceipt) and self._nursery is not None:
            # every validator needs every update to check the candidate: fetch it now, while
            # the other receipts are still arriving, not when the candidate shows up
            self.metrics.count_update("received")
            self._nursery.start_soon(self._blob, message.blob_hash, int(message.author))
        if event is not None:
            self._send.send_nowait(event)

    # ------------------------------------------------------------------ actions

    async def _execute(self, action: Action) -> None:
        nursery = self._nursery
        assert nursery is not None
        if isinstance(action, PersistSignerState):
            started = time.perf_counter()
            # durable before the next action (the Broadcast it protects); fsync off the loop
            await trio.to_thread.run_sync(self.store.save_signer_state, codec.encode(action.state))
            self.metrics.observe_store_write("signer_state", time.perf_counter() - started)
        elif isinstance(action, Broadcast):
            await self._broadcast(action)
        elif isinstance(action, ScheduleTimeout):
            nursery.start_soon(self._timer, action)
        elif isinstance(action, StartTraining):
            if self.is_trainer:
                nursery.start_soon(self._contained, self._train, action)
        elif isinstance(action, BuildCandidate):
            self._times.building_at = self._times.building_at or time.monotonic()
            nursery.start_soon(self._contained, self._build, action)
        elif isinstance(action, EvaluateCandidate):
            nursery.start_soon(self._contained, self._evaluate, action.candidate)
        elif isinstance(action, Commit):
            self._commit(action)
        elif isinstance(action, ReportEvidence):
            self.metrics.count_evidence("equivocation")
            log.warning("equivocation by validator %d", action.evidence.vote_a.validator)
        elif isinstance(action, RequestSync) and not self._syncing:
            self._syncing = True
            nursery.start_soon(self._sync, int(action.from_height))

    async def _contained(self, work: Callable[[Any], Awaitable[None]], arg: Any) -> None:
        """Run one piece of learning work; a failure is logged, never takes the node down.

        The core does not need an answer to make progress: without a candidate or a verdict
        its timeouts move the height on (a new round, or a carry-over block).
        """
        try:
            await work(arg)
        except Exception:
            log.exception("%s failed at height %d", work.__name__.lstrip("_"), self.core.height)

    async def _broadcast(self, action: Broadcast) -> None:
        message = action.message
        self._sent = [m for m in self._sent if m.height >= self.core.height] + [message]
        data = codec.encode_message(message)
        topic = TOPIC_OF[type(message)]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("send %s %s", type(message).__name__, codec.sha256(data).hex()[:12])
        if isinstance(message, Proposal):
            self.metrics.count_proposal("sent")
            self._times.proposal_at = self._times.proposal_at or time.monotonic()
        elif isinstance(message, Vote):
            self.metrics.count_vote(message.vote_type.name.lower(), "sent")
        elif isinstance(message, Candidate):
            self._times.candidate_at = self._times.candidate_at or time.monotonic()
        elif isinstance(message, Attestation):
            self.metrics.count_attestation("improved" if message.improved else "not_improved")
        await self.net.publish(topic, data)  # counted by the network's counters
        if self.equivocator is not None and isinstance(message, Vote) and message.block_hash:
            await self._equivocate(message)

    async def _equivocate(self, vote: Vote) -> None:
        """Test networks only (`byzantine.behaviour = "equivocate"`): also vote nil, signed.

        The core's signer guard would refuse this, which is the point: the conflicting vote is
        signed here, outside the core, with the same key, so honest nodes see real evidence.
        """
        assert self.equivocator is not None
        twin = replace(vote, block_hash=None, signature=EMPTY_SIGNATURE)
        chain_id = self.core.genesis.chain_id
        twin = replace(twin, signature=self.equivocator.sign(codec.sign_bytes(chain_id, twin)))
        await self.net.publish(Topic.CONSENSUS, codec.encode_message(twin))

    async def _timer(self, action: ScheduleTimeout) -> None:
        await trio.sleep(max(0.0, action.delay_seconds))
        self.submit(TimeoutFired(action.height, action.round, action.step))

    # ------------------------------------------------------------------ learning work

    async def _blob(self, blob_hash: bytes, author: int | None = None) -> bytes | None:
        """A blob from the local store, else fetched (verified) from peers; None if nobody has it.

        The network shares one transfer among concurrent fetches of a blob. The author of an
        update (when known) is asked first, as it certainly holds the blob.
        """
        if self.store.blobs.has(blob_hash):
            return self.store.blobs.get(blob_hash)
        started = time.monotonic()
        peers = self.net.peers()
        if author is not None and 0 <= author < len(self.core.genesis.validators):
            first = self.core.genesis.validators[author].peer_id
            peers = sorted(peers, key=lambda p: p != first)
        try:
            with trio.fail_after(BLOB_FETCH_TIMEOUT_S):
                data = await self.net.fetch_blob(blob_hash, from_peers=peers)
        except (BlobUnavailableError, trio.TooSlowError):
            self.metrics.observe_blob_transfer("in", 0, time.monotonic() - started, ok=False)
            return None
        self.metrics.observe_blob_transfer("in", len(data), time.monotonic() - started)
        return data

    async def _put_blob(self, data: bytes) -> bytes:
        """Store a blob durably off the event loop; return its hash."""
        started = time.perf_counter()
        blob_hash = await trio.to_thread.run_sync(self.store.blobs.put, data)
        self.metrics.observe_store_write("blob", time.perf_counter() - started)
        return blob_hash

    async def _train(self, action: StartTraining) -> None:
        app = self.app
        assert app is not None
        base = await self._blob(action.base_model_hash)
        if base is None:
            log.warning("cannot train at height %d: base model unavailable", action.height)
            return
        outcome = await trio.to_thread.run_sync(app.train, base, int(action.height))
        self.metrics.observe_training(outcome.seconds)
        if outcome.update is None:
            log.info("not contributing at height %d: %s", action.height, outcome.skipped)
            return
        if outcome.epsilon_spent:
            self.metrics.set_dp_epsilon(outcome.epsilon_spent)
        blob_hash = await self._put_blob(outcome.update)
        if int(self.core.height) == int(action.height):
            self._times.train_s = outcome.seconds
            self._times.trained_at = time.monotonic()
        loss = outcome.train_loss if math.isfinite(outcome.train_loss) else 0.0
        self.submit(
            TrainingFinished(
                action.height,
                action.base_model_hash,
                Hash(blob_hash),
                outcome.n_samples,
                loss,
                outcome.epsilon_spent,
            )
        )

    async def _updates(
        self, receipts: tuple[UpdateReceipt, ...]
    ) -> list[tuple[UpdateReceipt, bytes | None]]:
        """The update blobs of `receipts`, fetched concurrently (None where unavailable)."""
        blobs: dict[bytes, bytes | None] = {}

        async def one(receipt: UpdateReceipt) -> None:
            blobs[receipt.blob_hash] = await self._blob(receipt.blob_hash, int(receipt.author))

        async with trio.open_nursery() as nursery:
            for receipt in receipts:
                nursery.start_soon(one, receipt)
        return [(r, blobs[r.blob_hash]) for r in receipts]

    async def _build(self, action: BuildCandidate) -> None:
        app = self.app
        base = await self._blob(action.base_model_hash)
        if app is None or base is None:
            log.warning("cannot build a candidate at height %d", action.height)
            return
        updates = await self._updates(action.receipts)
        started = time.perf_counter()
        outcome = await trio.to_thread.run_sync(app.build_candidate, base, updates)
        self.metrics.observe_aggregation(time.perf_counter() - started)
        for _, reason in outcome.rejected:
            self.metrics.count_update("rejected", labels.update_reason(reason))
        for _ in outcome.accepted:
            self.metrics.count_update("accepted")
        model_hash = action.base_model_hash
        if outcome.model is not None:
            model_hash = Hash(await self._put_blob(outcome.model))
        candidate = Candidate(
            height=action.height,
            round=action.round,
            proposer=self.core.me if self.core.me is not None else 0,  # type: ignore[arg-type]
            base_model_hash=action.base_model_hash,
            model_hash=model_hash,
            receipts=outcome.accepted,
            rejected=tuple(r for r, _ in outcome.rejected),
            rule=self.core.genesis.aggregation_rule,
        )
        self.submit(CandidateBuilt(candidate))

    async def _evaluate(self, candidate: Candidate) -> None:
        app = self.app
        candidate_hash = codec.candidate_hash(candidate)
        base = await self._blob(candidate.base_model_hash)
        if app is None or base is None:
            log.warning("cannot evaluate candidate at height %d", candidate.height)
            return
        self._times.candidate_at = self._times.candidate_at or time.monotonic()
        updates = await self._updates(candidate.receipts)
        started = time.perf_counter()
        result = await trio.to_thread.run_sync(
            app.evaluate_candidate, base, candidate_hash, candidate.model_hash, updates
        )
        seconds = time.perf_counter() - started
        self.metrics.observe_evaluation(seconds)
        if int(candidate.height) == int(self.core.height):
            self._times.eval_s += seconds
        if result.refusal:
            log.warning("refusing candidate at height %d: %s", candidate.height, result.refusal)
            self.metrics.count_attestation("refused")
        if result.model is not None:
            await self._put_blob(result.model)
            self._evaluations[candidate.model_hash] = result.metrics_after
        self.submit(CandidateEvaluated(candidate_hash, result.improved, result.report))

    # ------------------------------------------------------------------ commit and sync

    def _commit(self, action: Commit) -> None:
        block, cert = action.block, action.commit_certificate
        height = int(block.height)
        started = time.perf_counter()
        refs = (block.header.model_hash, *(r.blob_hash for r in block.receipts))
        self.store.put_block(
            height,
            codec.block_hash(block),
            codec.encode(block),
            codec.encode(cert),
            blob_refs=refs,
            ledger_snapshot=codec.encode(action.ledger),
        )
        self.metrics.observe_store_write("block", time.perf_counter() - started)
        self.metrics.observe_step("commit", time.perf_counter() - started)
        now = time.monotonic()
        phases = self._times.phases(now)
        self.store.set_meta(f"phases/{height}", json.dumps(phases).encode())
        interval = phases["block_interval"]
        self.metrics.observe_commit(
            height, int(cert.round), interval, len(codec.encode(cert)), block.is_carry_over
        )
        self.metrics.observe_phases({k: v for k, v in phases.items() if k in PHASES})
        # missing: validators from whom no precommit of the previous height reached us, late
        # ones included (the certificate itself stops at the first votes past 2/3)
        previous = height - 1
        if previous >= 1:
            heard = self._precommitted.pop(previous, set())
            if block.last_commit is not None:
                heard |= set(self.core.validator_set.indices(block.last_commit.signers))
            if self.core.me is not None:
                heard.add(int(self.core.me))
            voting = {i for i, v in enumerate(self.core.genesis.validators) if v.power > 0}
            self.metrics.set_missing_validators(len(voting - heard))
        for old in [h for h in self._precommitted if h < previous]:
            del self._precommitted[old]
        if block.improvement_certificate is not None:
            self.metrics.observe_certificate(
                "improvement", len(codec.encode(block.improvement_certificate))
            )
            gains = sorted(r.loss_before - r.loss_after for r in block.eval_reports)
            if gains:
                self.metrics.set_attested_improvement(gains[len(gains) // 2])
        if block.evidence:
            self.metrics.set_byzantine_validators(len({e.vote_a.validator for e in block.evidence}))
        after = self._evaluations.get(block.header.model_hash)
        if after is not None and self.app is not None:
            name = self.app.task.metric
            self.state.last_metric = {"name": name, "value": after.get(name)}
            if name in after:
                self.metrics.set_model_metrics(after.get("loss", 0.0), name, after[name])
        log.info(
            "committed height %d round %d (%s) in %.3f s",
            height,
            int(cert.round),
            "carry-over" if block.is_carry_over else "model update",
            interval,
        )
        self._times = HeightTimes(start=now)
        if not self.store.blobs.has(block.header.model_hash) and self._nursery is not None:
            self._nursery.start_soon(self._blob, block.header.model_hash)

    async def _sync(self, from_height: int) -> None:
        """Fetch committed blocks from peers and feed them to the core, which re-verifies them."""
        self.state.sync_state = "catching_up"
        self.metrics.set_sync_state("catching_up")
        try:
            for peer in self.net.peers():
                if await self._sync_from(peer, from_height):
                    break
        finally:
            self._syncing = False
            self.state.sync_state = "in_sync"
            self.metrics.set_sync_state("in_sync")

    async def _sync_from(self, peer: str, from_height: int) -> bool:
        """Feed the blocks `peer` holds from `from_height` on; True if it had any."""
        try:
            with trio.fail_after(BLOB_FETCH_TIMEOUT_S):
                batch = await self.net.fetch_blocks(peer, from_height)
        except Exception as exc:  # a peer's failure (refused, timeout, framing): try another
            log.info("sync from %s failed: %s", peer, exc)
            return False
        if batch.peer_tip is not None and batch.peer_tip >= from_height:
            self.metrics.set_sync_state(self.state.sync_state, target_height=batch.peer_tip)
        fed = 0
        for stored in batch.blocks:
            try:
                block = codec.decode_as(stored.block, Block)
                cert = codec.decode_as(stored.commit_cert, CommitCertificate)
            except codec.InvalidMessage as exc:
                log.warning("peer %s sent an invalid block: %s", peer, exc.reason)
                break
            if codec.block_hash(block) != stored.hash or int(block.height) != stored.height:
                log.warning("peer %s sent a block whose hash or height does not match", peer)
                break
            self.submit(BlockSynced(block, cert))
            fed += 1
        if fed:
            self.metrics.count_synced_blocks(fed)
        return fed > 0

    async def _watchdog(self) -> None:
        """When no block was committed for a while: re-send what we signed, poll for blocks.

        Gossip only reaches peers connected at the time; one that restarted or was cut off
        missed our votes and attestations of this height, so they are published again (the
        cores deduplicate). The core asks for sync (`RequestSync`) when it sees >1/3 of the
        power at a later height, but a node far behind drops those messages at the gossip edge
        (height window), and a node that just restarted may see none: the poll catches both.
        """
        turn = 0
        while True:
            await trio.sleep(SYNC_POLL_S)
            idle = time.monotonic() - self._times.start
            peers = sorted(self.net.peers())
            if idle < SYNC_POLL_S or not peers:
                continue
            for message in [m for m in self._sent if m.height == self.core.height]:
                await self.net.publish(TOPIC_OF[type(message)], codec.encode_message(message))
            if self._syncing:
                continue
            turn += 1
            self._syncing = True
            try:
                await self._sync_from(peers[turn % len(peers)], int(self.core.height))
            finally:
                self._syncing = False

    async def _housekeeping(self) -> None:
        """Once a second: export network counters and peer count; every 5 s the store's size."""
        tick = 0
        while True:
            self.state.peers = len(self.net.peers())
            self.metrics.set_peers(self.state.peers)
            c = self.net.counters
            self.metrics.absorb_network_totals(
                messages={
                    **{(t, "in"): n for t, n in c.messages_in.items()},
                    **{(t, "out"): n for t, n in c.messages_out.items()},
                },
                nbytes={
                    **{(t, "in"): n for t, n in c.bytes_in.items()},
                    **{(t, "out"): n for t, n in c.bytes_out.items()},
                },
                rejected=labels.by_closed_reason(c.rejected),
                refused={"not-allowed": c.refused_connections},
                blobs_served=c.blob_serves,
                blob_bytes_out=c.blob_bytes_out,
            )
            if tick % 5 == 0:
                sizes = await trio.to_thread.run_sync(measure_store, self.store.blobs.root.parent)
                self.metrics.set_storage(*sizes)
            if tick % PRUNE_EVERY_S == PRUNE_EVERY_S - 1:
                await self._prune()
            tick += 1
            await trio.sleep(1.0)

    async def _prune(self) -> None:
        """Delete model and update blobs of old heights (never the chain, never what is in use)."""
        pinned = [self.core.genesis.initial_model_hash, self.core.model_hash]
        deleted = await trio.to_thread.run_sync(
            lambda: self.store.prune_blobs(keep_last=self.keep_last_models, pinned=pinned)
        )
        if deleted:
            self.metrics.count_blobs_pruned(len(deleted))
            log.info("pruned %d old blobs", len(deleted))

    def _mark(self, event: Event) -> None:
        if isinstance(event, ProposalReceived):  # passed the topic validator's checks
            self.metrics.count_proposal("accepted")
        elif isinstance(event, VoteReceived):
            self.metrics.count_vote(event.vote.vote_type.name.lower(), "accepted")
            vote = event.vote
            if vote.vote_type == VoteType.PRECOMMIT and vote.height >= self.core.height - 1:
                self._precommitted.setdefault(int(vote.height), set()).add(int(vote.validator))
        if isinstance(event, ProposalReceived) and event.proposal.height == self.core.height:
            self._times.proposal_at = self._times.proposal_at or time.monotonic()
        elif isinstance(event, CandidateReceived) and event.candidate.height == self.core.height:
            self._times.candidate_at = self._times.candidate_at or time.monotonic()
        elif (
            isinstance(event, ReceiptReceived | TrainingFinished)
            and event_height(event) == self.core.height
            and self._times.candidate_at is None
        ):
            self._times.last_receipt_at = time.monotonic()


def event_height(event: ReceiptReceived | TrainingFinished) -> int:
    """The height a receipt (ours or a peer's) belongs to."""
    return int(event.receipt.height if isinstance(event, ReceiptReceived) else event.height)


__all__ = ["Driver"]
