"""The metrics observer: what the node shows operators, derived from what passes the driver.

The cores and the shell stay metric-free; the driver hands this observer every message it
delivers, every request it performs and every commit it stores, and its `run` exports the
network's counters, the peer count and the store's size periodically. `NodeState` is what the
HTTP API and `bcfl status` show.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import trio

from consensus import codec
from consensus.events import Message
from consensus.shell import PHASES, CountRejection, NoteEvidence, Publish, StoreCommit
from consensus.types import Attestation, Hash, Proposal, UpdateReceipt, Vote
from node.network import NodeNetwork
from node.store import ChainStore
from telemetry import labels
from telemetry.metrics import NodeMetrics
from telemetry.storage import measure_store

log = logging.getLogger("bcfl.driver")

EXPORT_EVERY_S = 1.0
STORAGE_EVERY_TICKS = 5
STORAGE_CPU_SHARE = 0.002
"""The store walk (`measure_store`) stats every blob, so its cost grows with the chain (16
members write 16 update blobs a height): after a walk that took t CPU-seconds the next waits
at least t / STORAGE_CPU_SHARE, so it never takes more than 0.2% of a core."""


@dataclass
class NodeState:
    """What the HTTP API and the status command show."""

    peers: int = 0
    sync_state: str = "in_sync"
    last_metric: dict[str, Any] | None = None


class MetricsObserver:
    """Records the node's metrics; `run` exports the network and storage gauges."""

    def __init__(
        self,
        *,
        metrics: NodeMetrics,
        net: NodeNetwork,
        store: ChainStore,
        metric_name: str | None,
        evaluations: Mapping[Hash, Mapping[str, float]],
    ) -> None:
        self.metrics = metrics
        self.net = net
        self.store = store
        self.metric_name = metric_name  # the task's verdict metric (None: no learning app)
        self.evaluations = evaluations  # model hash -> this node's metrics of that model
        self.state = NodeState()

    # -- what passes the driver ------------------------------------------------------------

    def delivered(self, message: Message) -> None:
        """A gossip message passed the edge and goes to the shell."""
        if isinstance(message, Proposal):
            self.metrics.count_proposal("accepted")
        elif isinstance(message, Vote):
            self.metrics.count_vote(message.vote_type.name.lower(), "accepted")
        elif isinstance(message, UpdateReceipt):
            self.metrics.count_update("received")

    def published(self, request: Publish) -> None:
        message = request.message
        if request.resend:
            return
        if isinstance(message, Proposal):
            self.metrics.count_proposal("sent")
        elif isinstance(message, Vote):
            self.metrics.count_vote(message.vote_type.name.lower(), "sent")
        elif isinstance(message, Attestation):
            self.metrics.count_attestation("improved" if message.improved else "not_improved")

    def rejected(self, request: CountRejection) -> None:
        self.metrics.count_core_rejection(request.reason)
        log.debug("core refused a message: %s (%s)", request.reason, request.detail)

    def evidence(self, request: NoteEvidence) -> None:
        evidence = request.evidence
        self.metrics.count_evidence(evidence.kind.replace("-", "_"))
        log.warning("%s evidence against member %d", evidence.kind, evidence.offender)

    def committed(self, request: StoreCommit, *, store_seconds: float) -> None:
        block, cert = request.commit.block, request.commit.commit_certificate
        height = int(block.height)
        phases = request.phases
        self.metrics.observe_store_write("block", store_seconds)
        self.metrics.observe_step("commit", store_seconds)
        interval = phases["block_interval"]
        self.metrics.observe_commit(
            height, int(cert.round), interval, len(codec.encode(cert)), block.is_carry_over
        )
        self.metrics.observe_phases({k: v for k, v in phases.items() if k in PHASES})
        if request.missing_validators is not None:
            self.metrics.set_missing_validators(request.missing_validators)
        if block.improvement_certificate is not None:
            self.metrics.observe_certificate(
                "improvement", len(codec.encode(block.improvement_certificate))
            )
            gains = [r.loss_before - r.loss_after for r in block.eval_reports]
            if gains:
                self.metrics.set_attested_improvement(median(gains))
        if block.all_evidence:
            offenders = {e.offender for e in block.all_evidence}
            self.metrics.set_byzantine_validators(len(offenders))
        after = self.evaluations.get(block.header.model_hash)
        name = self.metric_name
        if after is not None and name is not None:
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

    def sync_state(self, state: str) -> None:
        self.state.sync_state = state

    # -- the periodic export ---------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Every second: peers and the network's counters; every 5 s: the store's size."""
        task_status.started()
        tick = 0
        next_walk = 0
        while True:
            self.export_network()
            if tick >= next_walk:
                sizes, cpu = await trio.to_thread.run_sync(timed_walk, self.store.blobs.root.parent)
                self.metrics.set_storage(*sizes)
                next_walk = tick + storage_wait_ticks(cpu)
            tick += 1
            await trio.sleep(EXPORT_EVERY_S)

    def export_network(self) -> None:
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
            refused={
                "not-allowed": c.refused_connections,
                "unsupported-key": c.refused_unsupported_key,
            },
            blobs_served=c.blob_serves,
            blob_bytes_out=c.blob_bytes_out,
        )


class Housekeeping:
    """Deletes model and update blobs of old heights (never the chain, never what is in use)."""

    def __init__(
        self,
        *,
        store: ChainStore,
        metrics: NodeMetrics,
        keep_last_models: int,
        pinned: Callable[[], list[bytes]],
        every_s: float = 60.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.keep_last_models = keep_last_models
        self.pinned = pinned
        self.every_s = every_s

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.every_s)
            await self.prune()

    async def prune(self) -> list[bytes]:
        pinned = self.pinned()
        deleted: list[bytes] = await trio.to_thread.run_sync(
            lambda: self.store.prune_blobs(keep_last=self.keep_last_models, pinned=pinned)
        )
        if deleted:
            self.metrics.count_blobs_pruned(len(deleted))
            log.info("pruned %d old blobs", len(deleted))
        return deleted


__all__ = ["Housekeeping", "MetricsObserver", "NodeState"]


def timed_walk(data_dir: Path) -> tuple[tuple[int, int, int], float]:
    """`measure_store` and the CPU time it took (this thread's)."""
    started = time.thread_time()
    sizes = measure_store(data_dir)
    return sizes, time.thread_time() - started


def storage_wait_ticks(walk_cpu_s: float) -> int:
    """Export ticks until the next store walk (`STORAGE_CPU_SHARE`)."""
    return max(STORAGE_EVERY_TICKS, math.ceil(walk_cpu_s / STORAGE_CPU_SHARE / EXPORT_EVERY_S))
