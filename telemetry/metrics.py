"""Every Prometheus metric a bcfl node exports, on one per-node registry.

The cores (`consensus/`, `learning/`) stay metric-free; the node's driver calls
the typed methods of `NodeMetrics` from the events and actions that pass through
it (see /work/briefs/telemetry-api.md for where). Conventions follow the
Prometheus naming guide (https://prometheus.io/docs/practices/naming/):

- every name starts with `bcfl_`, carries its base unit (`_seconds`, `_bytes`),
  counters end in `_total`, durations are histograms;
- `bcfl_build_info{version,chain_id,node_id}` is a constant 1;
- every label value comes from a closed enum in `telemetry.labels` and is
  checked (unbounded labels are how a monitoring server dies). All label
  combinations are created up front, so a counter that never fired reads 0
  instead of being absent (rates and dashboard panels then show 0, not "no data");
- process CPU, memory and file descriptors come from prometheus_client's
  standard process collector registered on the same registry (`process_*`).

A per-node registry (not the library's global one) lets several nodes live in
one process (tests, simulators) without colliding. `enabled=False` builds
nothing and turns every method into an early return, so the driver can measure
its overhead with metrics on and off without changing its code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from telemetry import labels as L

# Bucket boundaries, in base units.
FAST_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HEIGHT_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
WORK_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
LAG_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CERT_BYTES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536, 262144)
ROUNDS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)

# The `*_created` companion series of every counter and histogram double the
# series count for no dashboard or alert we have; this switch is process-wide.
disable_created_metrics()


def _children(metric: Any, *enums: tuple[str, ...]) -> dict[tuple[str, ...], Any]:
    """Create every label combination of `metric` and index the children by value tuple."""
    combos: list[tuple[str, ...]] = [()]
    for enum in enums:
        combos = [c + (v,) for c in combos for v in enum]
    return {combo: metric.labels(*combo) for combo in combos}


def _child(children: dict[tuple[str, ...], Any], name: str, *values: str) -> Any:
    child = children.get(values)
    if child is None:
        allowed = sorted({v for key in children for v in key})
        raise ValueError(f"{name} label values {values!r} not allowed (one of {allowed})")
    return child


class NodeMetrics:
    """The metrics of one node. Methods take primitives and are safe to call from any thread."""

    def __init__(
        self,
        *,
        node_id: str,
        chain_id: str,
        version: str,
        enabled: bool = True,
        process_metrics: bool = True,
    ) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        self._last_totals: dict[tuple[str, ...], int] = {}
        self._step_key: tuple[int, int, str] | None = None
        self._step_since = 0.0
        self._target_height = 0
        if not enabled:
            return
        reg = self.registry
        if process_metrics:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)

        Gauge(
            "bcfl_build_info",
            "Constant 1, labelled with the build version, chain id and node id.",
            ["version", "chain_id", "node_id"],
            registry=reg,
        ).labels(version, chain_id, node_id).set(1)

        # --- consensus -------------------------------------------------------
        self._height = Gauge(
            "bcfl_chain_height", "Height of the last committed block.", registry=reg
        )
        self._round = Gauge(
            "bcfl_consensus_round", "Current round at the current height.", registry=reg
        )
        self._step = _children(
            Histogram(
                "bcfl_consensus_step_duration_seconds",
                "Time spent in each consensus step.",
                ["step"],
                buckets=FAST_SECONDS,
                registry=reg,
            ),
            L.STEPS,
        )
        self._interval = Histogram(
            "bcfl_block_interval_seconds",
            "Time between two consecutive committed blocks.",
            buckets=HEIGHT_SECONDS,
            registry=reg,
        )
        self._blocks = _children(
            Counter(
                "bcfl_blocks_committed_total",
                "Committed blocks by kind (model update or carry-over).",
                ["kind"],
                registry=reg,
            ),
            L.BLOCK_KINDS,
        )
        self._last_commit = Gauge(
            "bcfl_last_commit_timestamp_seconds",
            "Unix time at which this node stored its last committed block.",
            registry=reg,
        )
        self._rounds = Histogram(
            "bcfl_consensus_rounds_per_height",
            "Rounds needed to commit a height (1 = first round).",
            buckets=ROUNDS,
            registry=reg,
        )
        self._missing = Gauge(
            "bcfl_consensus_missing_validators",
            "Validators absent from the last commit certificate.",
            registry=reg,
        )
        self._byzantine = Gauge(
            "bcfl_consensus_byzantine_validators",
            "Distinct validators this node holds misbehaviour evidence against.",
            registry=reg,
        )
        self._evidence = _children(
            Counter(
                "bcfl_byzantine_evidence_total",
                "Misbehaviour evidence seen, by kind.",
                ["kind"],
                registry=reg,
            ),
            L.EVIDENCE_KINDS,
        )
        self._cert = _children(
            Histogram(
                "bcfl_certificate_size_bytes",
                "Encoded size of commit and improvement certificates.",
                ["kind"],
                buckets=CERT_BYTES,
                registry=reg,
            ),
            L.CERTIFICATE_KINDS,
        )
        self._proposals = _children(
            Counter("bcfl_proposals_total", "Proposals by result.", ["result"], registry=reg),
            L.PROPOSAL_RESULTS,
        )
        self._votes = _children(
            Counter(
                "bcfl_votes_total", "Votes by type and result.", ["type", "result"], registry=reg
            ),
            L.VOTE_TYPES,
            L.VOTE_RESULTS,
        )
        self._validators = Gauge(
            "bcfl_validators", "Validators in the genesis validator set.", registry=reg
        )
        self._quorum_peers = Gauge(
            "bcfl_peers_quorum",
            "Fewest connected validator peers with which this node can still reach a quorum.",
            registry=reg,
        )

        # --- learning --------------------------------------------------------
        self._upd_received = Counter(
            "bcfl_updates_received_total", "Update receipts received.", registry=reg
        )
        self._upd_accepted = Counter(
            "bcfl_updates_accepted_total", "Updates that passed validation.", registry=reg
        )
        self._upd_rejected = _children(
            Counter(
                "bcfl_updates_rejected_total",
                "Updates rejected, by reason.",
                ["reason"],
                registry=reg,
            ),
            L.UPDATE_REJECT_REASONS,
        )
        self._train = Histogram(
            "bcfl_training_duration_seconds",
            "Local training time per height.",
            buckets=WORK_SECONDS,
            registry=reg,
        )
        self._eval = Histogram(
            "bcfl_evaluation_duration_seconds",
            "Evaluation time of one model on the local validation split.",
            buckets=WORK_SECONDS,
            registry=reg,
        )
        self._aggregate = Histogram(
            "bcfl_aggregation_duration_seconds",
            "Time to aggregate the updates of a candidate.",
            buckets=WORK_SECONDS,
            registry=reg,
        )
        self._loss = Gauge(
            "bcfl_model_validation_loss",
            "Loss of the committed global model on this node's validation split.",
            registry=reg,
        )
        self._metric = Gauge(
            "bcfl_model_validation_metric",
            "Task metric of the committed global model on this node's validation split.",
            ["metric"],
            registry=reg,
        )
        self._improvement = Gauge(
            "bcfl_model_attested_improvement",
            "Median attested improvement of the last certified model (positive is better).",
            registry=reg,
        )
        self._attestations = _children(
            Counter(
                "bcfl_attestations_total",
                "Attestations sent or received, by verdict.",
                ["verdict"],
                registry=reg,
            ),
            L.ATTESTATION_VERDICTS,
        )
        self._epsilon = Gauge(
            "bcfl_dp_epsilon_spent",
            "Differential-privacy budget (epsilon) this site has spent.",
            registry=reg,
        )

        # --- network ---------------------------------------------------------
        self._peers = Gauge("bcfl_peers", "Connected peers.", registry=reg)
        self._gossip_msgs = _children(
            Counter(
                "bcfl_gossip_messages_total",
                "Gossip messages by topic and direction.",
                ["topic", "direction"],
                registry=reg,
            ),
            L.TOPICS,
            L.DIRECTIONS,
        )
        self._gossip_bytes = _children(
            Counter(
                "bcfl_gossip_bytes_total",
                "Gossip payload bytes by topic and direction.",
                ["topic", "direction"],
                registry=reg,
            ),
            L.TOPICS,
            L.DIRECTIONS,
        )
        self._gossip_rejected = _children(
            Counter(
                "bcfl_gossip_rejected_total",
                "Gossip messages dropped by validation, by topic and reason.",
                ["topic", "reason"],
                registry=reg,
            ),
            L.TOPICS,
            L.GOSSIP_REJECT_REASONS,
        )
        self._refused = _children(
            Counter(
                "bcfl_connections_refused_total",
                "Inbound connections refused by the gate, by reason.",
                ["reason"],
                registry=reg,
            ),
            L.REFUSAL_REASONS,
        )
        self._blob_bytes = _children(
            Counter(
                "bcfl_blob_transfer_bytes_total",
                "Blob bytes fetched (in) and served (out).",
                ["direction"],
                registry=reg,
            ),
            L.DIRECTIONS,
        )
        self._blob_seconds = _children(
            Histogram(
                "bcfl_blob_transfer_duration_seconds",
                "Duration of one blob transfer.",
                ["direction"],
                buckets=WORK_SECONDS,
                registry=reg,
            ),
            L.DIRECTIONS,
        )
        self._blob_transfers = _children(
            Counter(
                "bcfl_blob_transfers_total",
                "Blob transfers by direction and result.",
                ["direction", "result"],
                registry=reg,
            ),
            L.DIRECTIONS,
            L.BLOB_RESULTS,
        )
        self._sync_state = _children(
            Gauge(
                "bcfl_sync_state",
                "1 for the node's current sync state, 0 for the others.",
                ["state"],
                registry=reg,
            ),
            L.SYNC_STATES,
        )
        self._sync_target = Gauge(
            "bcfl_sync_target_height",
            "Highest height a peer has announced (what sync is catching up to).",
            registry=reg,
        )
        self._synced = Counter(
            "bcfl_sync_blocks_total", "Blocks fetched and verified by sync.", registry=reg
        )

        # --- storage ---------------------------------------------------------
        self._store_write = _children(
            Histogram(
                "bcfl_store_write_duration_seconds",
                "Durable write time (including fsync), by kind.",
                ["kind"],
                buckets=FAST_SECONDS,
                registry=reg,
            ),
            L.STORE_WRITE_KINDS,
        )
        self._db_bytes = Gauge("bcfl_store_database_bytes", "SQLite database size.", registry=reg)
        self._blob_store_bytes = Gauge(
            "bcfl_store_blob_bytes", "Bytes held in the blob directory.", registry=reg
        )
        self._blob_count = Gauge("bcfl_store_blobs", "Blobs in the blob directory.", registry=reg)
        self._pruned = Counter(
            "bcfl_store_blobs_pruned_total", "Model blobs removed by pruning.", registry=reg
        )

        # --- process ---------------------------------------------------------
        self._lag = Histogram(
            "bcfl_event_loop_lag_seconds",
            "How late the event loop woke a sleeping task (responsiveness of consensus).",
            buckets=LAG_SECONDS,
            registry=reg,
        )
        self._phase = _children(
            Histogram(
                "bcfl_height_phase_duration_seconds",
                "Duration of each phase of a height.",
                ["phase"],
                buckets=HEIGHT_SECONDS,
                registry=reg,
            ),
            L.PHASES,
        )
        self.set_sync_state("in_sync")

    # --- output ---------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text format (what `/metrics` serves)."""
        return generate_latest(self.registry) if self.enabled else b""

    # --- consensus --------------------------------------------------------------

    def set_round(self, round_: int) -> None:
        """The round the node is in now."""
        if self.enabled:
            self._round.set(round_)

    def observe_step(self, step: str, seconds: float) -> None:
        """A consensus step (propose/prevote/precommit/commit) lasted `seconds`."""
        if self.enabled:
            _child(self._step, "step", step).observe(seconds)

    def enter_step(self, height: int, round_: int, step: str, now: float | None = None) -> None:
        """The core is at (height, round, step) now; a change ends the previous step.

        Call it after every event the core handled (a repeat of the same position is a
        no-op); the time spent in the step just left is observed as that step's duration.
        The propose step includes the proof-of-learning phase of round 0 (update window,
        candidate, attestations), which is where a height spends most of its time.
        """
        if not self.enabled:
            return
        key = (height, round_, step)
        if key == self._step_key:
            return
        at = time.monotonic() if now is None else now
        previous, self._step_key = self._step_key, key
        if previous is not None:
            _child(self._step, "step", previous[2]).observe(max(0.0, at - self._step_since))
        self._step_since = at

    def observe_commit(
        self, height: int, round: int, interval_s: float, cert_bytes: int, carry_over: bool
    ) -> None:
        """A block was committed and stored (round counted from 0)."""
        if not self.enabled:
            return
        self._height.set(height)
        self._round.set(round)
        self._rounds.observe(round + 1)
        self._interval.observe(interval_s)
        self._cert[("commit",)].observe(cert_bytes)
        self._blocks[("carry_over",) if carry_over else ("model",)].inc()
        self._last_commit.set_to_current_time()
        self._raise_target(height)

    def _raise_target(self, height: int) -> None:
        # The peers that signed our last block hold it too: the highest height a peer
        # has is never below ours, so "target - height" reads 0 when in sync, not negative.
        if height > self._target_height:
            self._target_height = height
            self._sync_target.set(height)

    def set_height(self, height: int) -> None:
        """The last committed height, when it changes outside a commit (start-up, sync)."""
        if self.enabled:
            self._height.set(height)
            self._raise_target(height)

    def set_missing_validators(self, n: int) -> None:
        """Validators absent from the last commit certificate."""
        if self.enabled:
            self._missing.set(n)

    def set_byzantine_validators(self, n: int) -> None:
        """Distinct validators with evidence of misbehaviour against them."""
        if self.enabled:
            self._byzantine.set(n)

    def count_evidence(self, kind: str) -> None:
        """Evidence of misbehaviour (equivocation, ...) was seen."""
        if self.enabled:
            _child(self._evidence, "evidence kind", kind).inc()

    def observe_certificate(self, kind: str, nbytes: int) -> None:
        """The encoded size of a certificate (commit or improvement)."""
        if self.enabled:
            _child(self._cert, "certificate kind", kind).observe(nbytes)

    def count_proposal(self, result: str) -> None:
        """A proposal was sent, or received and accepted or rejected."""
        if self.enabled:
            _child(self._proposals, "proposal result", result).inc()

    def count_vote(self, vote_type: str, result: str) -> None:
        """A vote was sent, or received and accepted, rejected or a duplicate."""
        if self.enabled:
            _child(self._votes, "vote", vote_type, result).inc()

    def set_validator_set(self, validators: int, quorum_peers: int) -> None:
        """Size of the validator set and the fewest peers needed for a quorum."""
        if self.enabled:
            self._validators.set(validators)
            self._quorum_peers.set(quorum_peers)

    # --- learning ---------------------------------------------------------------

    def count_update(self, result: str, reason: str | None = None) -> None:
        """An update receipt was received, or its update accepted or rejected (with a reason)."""
        if not self.enabled:
            return
        if result == "received":
            self._upd_received.inc()
        elif result == "accepted":
            self._upd_accepted.inc()
        elif result == "rejected":
            _child(self._upd_rejected, "update rejection", reason or "").inc()
        else:
            L.check("result", result, L.UPDATE_RESULTS)

    def observe_training(self, seconds: float) -> None:
        """Local training of one height took `seconds`."""
        if self.enabled:
            self._train.observe(seconds)

    def observe_evaluation(self, seconds: float) -> None:
        """One evaluation on the local validation split took `seconds`."""
        if self.enabled:
            self._eval.observe(seconds)

    def observe_aggregation(self, seconds: float) -> None:
        """Aggregating a candidate took `seconds`."""
        if self.enabled:
            self._aggregate.observe(seconds)

    def set_model_metrics(self, loss: float, metric_name: str, value: float) -> None:
        """Validation loss and task metric of the committed global model."""
        if self.enabled:
            self._loss.set(loss)
            self._metric.labels(L.check("metric", metric_name, L.MODEL_METRICS)).set(value)

    def set_attested_improvement(self, value: float) -> None:
        """Median improvement attested for the last certified model."""
        if self.enabled:
            self._improvement.set(value)

    def count_attestation(self, verdict: str) -> None:
        """An attestation was sent or received."""
        if self.enabled:
            _child(self._attestations, "verdict", verdict).inc()

    def set_dp_epsilon(self, epsilon: float) -> None:
        """Differential-privacy epsilon spent so far."""
        if self.enabled:
            self._epsilon.set(epsilon)

    # --- network ----------------------------------------------------------------

    def set_peers(self, n: int) -> None:
        """Connected peers."""
        if self.enabled:
            self._peers.set(n)

    def count_gossip(self, topic: str, direction: str, nbytes: int) -> None:
        """One gossip message of `nbytes` went `direction` ("in"/"out") on `topic`."""
        if not self.enabled:
            return
        key = (topic.rsplit("/", 1)[-1], direction)
        _child(self._gossip_msgs, "gossip", *key).inc()
        self._gossip_bytes[key].inc(nbytes)

    def count_rejected(self, topic: str, reason: str) -> None:
        """A gossip message on `topic` was dropped for `reason`."""
        if self.enabled:
            _child(
                self._gossip_rejected, "gossip rejection", topic.rsplit("/", 1)[-1], reason
            ).inc()

    def count_connection_refused(self, reason: str) -> None:
        """The connection gate refused a peer."""
        if self.enabled:
            _child(self._refused, "refusal", reason).inc()

    def observe_blob_transfer(
        self, direction: str, nbytes: int, seconds: float, ok: bool = True
    ) -> None:
        """A blob was fetched ("in") or served ("out")."""
        if not self.enabled:
            return
        _child(self._blob_transfers, "blob transfer", direction, "ok" if ok else "failed").inc()
        self._blob_bytes[(direction,)].inc(nbytes)
        self._blob_seconds[(direction,)].observe(seconds)

    def set_sync_state(self, state: str, target_height: int | None = None) -> None:
        """The node's sync state (one-hot gauge) and, if known, the height it syncs to."""
        if not self.enabled:
            return
        L.check("sync state", state, L.SYNC_STATES)
        for (name,), child in self._sync_state.items():
            child.set(1 if name == state else 0)
        if target_height is not None:
            self._target_height = max(self._target_height, target_height)
            self._sync_target.set(self._target_height)

    def count_synced_blocks(self, n: int = 1) -> None:
        """`n` blocks were fetched and verified by sync."""
        if self.enabled:
            self._synced.inc(n)

    # --- storage ----------------------------------------------------------------

    def observe_store_write(self, kind: str, seconds: float) -> None:
        """A durable write (block, blob, signer state, ledger) took `seconds`."""
        if self.enabled:
            _child(self._store_write, "store write", kind).observe(seconds)

    def set_storage(self, db_bytes: int, blob_bytes: int, blob_count: int) -> None:
        """Sizes of the node's database and blob directory."""
        if self.enabled:
            self._db_bytes.set(db_bytes)
            self._blob_store_bytes.set(blob_bytes)
            self._blob_count.set(blob_count)

    def count_blobs_pruned(self, n: int) -> None:
        """Pruning removed `n` blobs."""
        if self.enabled:
            self._pruned.inc(n)

    # --- process / heights ------------------------------------------------------

    def observe_loop_lag(self, seconds: float) -> None:
        """The event loop woke a sleeper `seconds` late."""
        if self.enabled:
            self._lag.observe(seconds)

    def observe_phase(self, name: str, seconds: float) -> None:
        """One phase of a height (train, update_gossip, ...) took `seconds`."""
        if self.enabled:
            _child(self._phase, "phase", name).observe(seconds)

    def observe_phases(self, phases: Mapping[str, float]) -> None:
        """All phases of a height at once, e.g. the `phases` dict of a devnet block."""
        for name, seconds in phases.items():
            self.observe_phase(name, seconds)

    # --- cumulative totals from the network layer --------------------------------

    def absorb_network_totals(
        self,
        *,
        messages: Mapping[tuple[str, str], int] | None = None,
        nbytes: Mapping[tuple[str, str], int] | None = None,
        rejected: Mapping[tuple[str, str], int] | None = None,
        refused: Mapping[str, int] | None = None,
        blobs_served: Mapping[str, int] | None = None,
        blob_bytes_out: int | None = None,
    ) -> None:
        """Fold cumulative counters kept by the network layer into the metrics.

        Each call increments by the change since the previous call; a total that
        went down (the network object was recreated) counts from zero again.
        `blobs_served` counts blob requests we answered, by outcome: "ok" is a served
        blob, anything else ("busy", "not_found", ...) a failed transfer out.
        """
        if not self.enabled:
            return
        families = (
            ("msg", self._gossip_msgs, messages),
            ("bytes", self._gossip_bytes, nbytes),
            ("rej", self._gossip_rejected, rejected),
        )
        for kind, children, totals in families:
            for (topic, second), total in (totals or {}).items():
                key = (topic.rsplit("/", 1)[-1], second)
                delta = self._delta((kind, *key), total)
                if delta:
                    _child(children, f"gossip {kind}", *key).inc(delta)
        for reason, total in (refused or {}).items():
            delta = self._delta(("ref", reason), total)
            if delta:
                _child(self._refused, "refusal", reason).inc(delta)
        for outcome, total in (blobs_served or {}).items():
            delta = self._delta(("serve", outcome), total)
            if delta:
                result = "ok" if outcome == "ok" else "failed"
                self._blob_transfers[("out", result)].inc(delta)
        if blob_bytes_out is not None:
            delta = self._delta(("serve-bytes",), blob_bytes_out)
            if delta:
                self._blob_bytes[("out",)].inc(delta)

    def _delta(self, key: tuple[str, ...], total: int) -> int:
        last = self._last_totals.get(key, 0)
        self._last_totals[key] = total
        return total - last if total >= last else total
