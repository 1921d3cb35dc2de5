"""Cost of the metrics per committed height, with metrics on versus off.

    python bench/bench_metrics.py [--heights 2000] [--nodes 4] [--scrape-interval 5]

One committed height at n nodes makes a driver call the metric methods about
100 times (steps, votes, receipts, gossip messages in and out, blob transfers,
phases, loop-lag samples...); `one_height` replays that call mix exactly as the
driver will (telemetry-api.md). The bench times it with `NodeMetrics(enabled=True)`
and `enabled=False`, adds the cost of rendering /metrics once per scrape
interval (the exporter thread does it, but it uses the same CPU), and reports
the overhead as a share of a block interval. Issue 5's goal is under 2%.
The driver-level measurement is a devnet run with metrics on and off
(`bcfl devnet up --blocks N --json` against `--no-metrics`); this isolates what
telemetry adds.
"""

from __future__ import annotations

import argparse
import random
import time

from telemetry import labels as L
from telemetry.metrics import NodeMetrics


def one_height(m: NodeMetrics, height: int, nodes: int, block_interval_s: float) -> int:
    """The metric calls of one committed height at one node; returns how many it made."""
    calls = 0
    others = nodes - 1
    m.set_round(0)
    for step in L.STEPS:
        m.observe_step(step, 0.01)
    calls += 5
    # receipts: every trainer's receipt arrives, its update is fetched and validated
    for _ in range(nodes):
        m.count_update("received")
        m.count_update("accepted")
        m.count_gossip("receipts", "in", 300)
    m.count_gossip("receipts", "out", 300)
    calls += 3 * nodes + 1
    for _ in range(others):
        m.observe_blob_transfer("in", 40_000, 0.004)
        m.observe_blob_transfer("out", 40_000, 0.004)
    calls += 2 * others
    m.observe_training(block_interval_s * 0.9)
    m.observe_aggregation(0.002)
    m.observe_evaluation(0.01)
    m.observe_evaluation(0.01)
    calls += 4
    # candidate + attestations
    m.count_gossip("candidates", "in", 500)
    for _ in range(nodes):
        m.count_attestation("improved")
        m.count_gossip("attestations", "in", 400)
    m.count_gossip("attestations", "out", 400)
    calls += 2 + 2 * nodes
    # proposal, prevotes, precommits
    m.count_proposal("accepted")
    m.count_gossip("consensus", "in", 900)
    calls += 2
    for vote_type in L.VOTE_TYPES:
        m.count_vote(vote_type, "sent")
        m.count_gossip("consensus", "out", 200)
        for _ in range(others):
            m.count_vote(vote_type, "accepted")
            m.count_gossip("consensus", "in", 200)
        calls += 2 + 2 * others
    # commit
    m.observe_commit(height, 0, block_interval_s, 180, False)
    m.set_missing_validators(0)
    m.observe_certificate("improvement", 500)
    m.set_model_metrics(0.2, "auc", 0.97)
    m.set_attested_improvement(0.003)
    m.set_dp_epsilon(0.1)
    m.observe_store_write("block", 0.002)
    m.observe_store_write("ledger", 0.001)
    m.observe_store_write("signer_state", 0.001)
    m.set_storage(1_000_000, 5_000_000, 20)
    m.set_peers(others)
    calls += 11
    m.observe_phases(
        {
            "train": 0.9,
            "update_gossip": 0.01,
            "candidate": 0.01,
            "attestation": 0.02,
            "propose_to_commit": 0.03,
            "block_interval": block_interval_s,
        }
    )
    calls += 6
    for _ in range(max(1, round(block_interval_s / 0.25))):  # loop-lag samples at 4 Hz
        m.observe_loop_lag(0.0005)
        calls += 1
    return calls


def time_heights(enabled: bool, heights: int, nodes: int, interval: float) -> tuple[float, int]:
    """Seconds per height and calls per height."""
    m = NodeMetrics(node_id="bench", chain_id="bench", version="0", enabled=enabled)
    calls = one_height(m, 0, nodes, interval)  # warm up
    start = time.perf_counter()
    for height in range(1, heights + 1):
        one_height(m, height, nodes, interval)
    return (time.perf_counter() - start) / heights, calls


def time_render(repeats: int = 50) -> float:
    m = NodeMetrics(node_id="bench", chain_id="bench", version="0")
    from telemetry.synthetic import exercise_every_metric

    exercise_every_metric(m, 1, random.Random(0))
    start = time.perf_counter()
    for _ in range(repeats):
        m.render()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--scrape-interval", type=float, default=5.0, help="seconds")
    args = parser.parse_args()
    render_s = time_render()
    print(f"render /metrics: {render_s * 1e3:.2f} ms per scrape")
    print(
        f"{'block interval':>14} {'calls':>5} {'on us/height':>12} {'off us/height':>13}"
        f" {'scrape us/height':>16} {'overhead %':>10}"
    )
    for interval in (0.5, 1.0, 10.3):
        on, calls = time_heights(True, args.heights, args.nodes, interval)
        off, _ = time_heights(False, args.heights, args.nodes, interval)
        scrape = render_s * interval / args.scrape_interval
        overhead = (on - off + scrape) / interval * 100
        print(
            f"{interval:>13.1f}s {calls:>5} {on * 1e6:>12.1f} {off * 1e6:>13.1f}"
            f" {scrape * 1e6:>16.1f} {overhead:>10.3f}"
        )


if __name__ == "__main__":
    main()
