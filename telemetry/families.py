"""The metric families of a node, defined on its registry (one block per subsystem).

Split out of `telemetry/metrics.py`, whose `NodeMetrics` inherits these attributes and
updates them through its typed methods. Names, help texts, buckets and label sets live here.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from telemetry import labels as L

# Bucket boundaries, in base units.
FAST_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HEIGHT_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
WORK_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
LAG_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CERT_BYTES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536, 262144)
ROUNDS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20)


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


class MetricFamilies:
    """Creates every bcfl metric family as an attribute (`_height`, `_step`, ...)."""

    def _define_families(self, reg: CollectorRegistry) -> None:
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
            "Validators whose precommit for the height before the last never reached this node.",
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
        self._core_rejected = _children(
            Counter(
                "bcfl_consensus_rejected_total",
                "Messages (or synced blocks) the consensus core refused after the gossip edge, "
                "by reason.",
                ["reason"],
                registry=reg,
            ),
            L.CORE_REJECT_REASONS,
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
        self._budget_exhausted = Gauge(
            "bcfl_dp_budget_exhausted",
            "1 when this site's privacy budget is spent and it stopped contributing.",
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
