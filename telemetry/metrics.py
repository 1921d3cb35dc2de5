"""Every Prometheus metric a bcfl node exports, on one per-node registry.

The cores (`consensus/`, `learning/`) stay metric-free; the node's driver calls
the typed methods of `NodeMetrics` from the events and actions that pass through
it (`node/driver.py` shows where). Conventions follow the
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

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from telemetry import labels as L
from telemetry.families import MetricFamilies, _child

# The `*_created` companion series of every counter and histogram double the
# series count for no dashboard or alert we have; this switch is process-wide.
disable_created_metrics()


class NodeMetrics(MetricFamilies):
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

        self._define_families(reg)
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

    def count_core_rejection(self, reason: str) -> None:
        """The consensus core refused a message or a synced block (`Rejected.reason`)."""
        if self.enabled:
            _child(self._core_rejected, "core rejection", L.core_reason(reason)).inc()

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

    def set_dp_budget_exhausted(self, exhausted: bool) -> None:
        """1 when this site's privacy budget allows no further release (it stopped)."""
        if self.enabled:
            self._budget_exhausted.set(1 if exhausted else 0)

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
