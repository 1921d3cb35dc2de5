"""A synthetic node that drives every metric with plausible values, and serves them.

Used by the monitoring tests (promtool, a real Prometheus evaluating every
dashboard and alert expression) and by anyone editing the Grafana dashboard
without a devnet:

    python -m telemetry.synthetic --port 9101 --node node0 [--period 0.2]

Each simulated height calls every `NodeMetrics` method at least once, with
every label value, so a panel that stays empty against this process queries a
metric or label that does not exist.
"""

from __future__ import annotations

import argparse
import random
import threading

from telemetry import labels as L
from telemetry.metrics import NodeMetrics


def exercise_every_metric(metrics: NodeMetrics, height: int, rng: random.Random) -> None:
    """Record one synthetic committed height touching every metric and label value."""
    m = metrics
    m.set_validator_set(validators=4, quorum_peers=2)
    m.set_round(0)
    for step in L.STEPS:
        m.observe_step(step, rng.uniform(0.001, 0.05))
    m.observe_commit(height, rng.choice((0, 0, 0, 1)), rng.uniform(0.5, 2.0), 180, height % 5 == 0)
    m.set_missing_validators(rng.choice((0, 0, 1)))
    m.set_byzantine_validators(0)
    m.observe_certificate("improvement", rng.randint(300, 600))
    for kind in L.EVIDENCE_KINDS:
        if rng.random() < 0.05:
            m.count_evidence(kind)
    for result in L.PROPOSAL_RESULTS:
        m.count_proposal(result)
    for vote_type in L.VOTE_TYPES:
        for result in L.VOTE_RESULTS:
            m.count_vote(vote_type, result)

    for _ in range(4):
        m.count_update("received")
        m.count_update("accepted")
    m.count_update("rejected", rng.choice(L.UPDATE_REJECT_REASONS))
    m.observe_training(rng.uniform(0.2, 1.0))
    m.observe_evaluation(rng.uniform(0.01, 0.05))
    m.observe_aggregation(rng.uniform(0.001, 0.01))
    auc = min(0.999, 0.80 + 0.15 * (1 - 0.9**height) + rng.uniform(-0.005, 0.005))
    m.set_model_metrics(loss=0.6 * 0.9**height + 0.1, metric_name="auc", value=auc)
    m.set_attested_improvement(0.01 * 0.9**height)
    for verdict in L.ATTESTATION_VERDICTS:
        m.count_attestation(verdict)
    m.set_dp_epsilon(0.1 * height)
    m.set_dp_budget_exhausted(height > 20)

    m.set_peers(3)
    for topic in L.TOPICS:
        for direction in L.DIRECTIONS:
            m.count_gossip(topic, direction, rng.randint(100, 2000))
        m.count_rejected(topic, rng.choice(L.GOSSIP_REJECT_REASONS))
    for reason in L.REFUSAL_REASONS:
        m.count_connection_refused(reason)
    for direction in L.DIRECTIONS:
        m.observe_blob_transfer(direction, rng.randint(10_000, 100_000), rng.uniform(0.001, 0.1))
    m.observe_blob_transfer("in", 0, 0.5, ok=False)
    m.set_sync_state("in_sync", target_height=height)
    m.count_synced_blocks(1)

    for kind in L.STORE_WRITE_KINDS:
        m.observe_store_write(kind, rng.uniform(0.0005, 0.01))
    m.set_storage(db_bytes=100_000 + 5_000 * height, blob_bytes=50_000 * height, blob_count=height)
    m.count_blobs_pruned(1)

    m.observe_loop_lag(rng.uniform(0.0, 0.004))
    for phase in L.PHASES:
        m.observe_phase(phase, rng.uniform(0.01, 1.0))


def run_synthetic_node(
    metrics: NodeMetrics, period_s: float, stop: threading.Event, seed: int = 0
) -> None:
    """Commit a synthetic height every `period_s` until `stop` is set."""
    rng = random.Random(seed)
    height = 1
    while True:
        exercise_every_metric(metrics, height, rng)
        height += 1
        if stop.wait(period_s):
            return


def main() -> None:
    from telemetry.exporter import MetricsExporter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--node", default="node0")
    parser.add_argument("--period", type=float, default=0.2, help="seconds per synthetic height")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    metrics = NodeMetrics(node_id=args.node, chain_id="synthetic", version="0.0.0")
    exporter = MetricsExporter(metrics, port=args.port)
    port = exporter.start()
    print(f"serving http://127.0.0.1:{port}/metrics", flush=True)
    stop = threading.Event()
    try:
        run_synthetic_node(metrics, args.period, stop, args.seed)
    except KeyboardInterrupt:
        pass
    finally:
        exporter.stop()


if __name__ == "__main__":
    main()
