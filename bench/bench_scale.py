"""Scale benchmark: real devnets of n daemons on this machine, one after the other.

For each n it creates a devnet (devnet/launcher.py), starts the n `bcfl run` processes on
127.0.0.1, waits for `--blocks` blocks on every node (or `--timeout`), stops them, and
reports per n:

- `block_interval_median_s`, `block_interval_p90_s`: time between consecutive commits
  (node0's phase marks, heights 2 and up, so the start-up is not counted);
- `phase_medians`: each phase's median (train, update_gossip, candidate, attestation, ...);
- `cpu_seconds_per_height_per_node`: median over the nodes of each node's CPU time (from
  /proc, all threads) per committed height after its first commit; also the max;
- `peak_rss_bytes_per_node`: the largest peak RSS (VmHWM) of any node;
- `gossip_messages_in_per_height_per_node`, `gossip_bytes_in_per_height_per_node`: gossip
  messages (and payload bytes) each node accepted, from its `/metrics`, per height;
- `round_changes_per_height`: the mean round at which node0's blocks of heights 2 and up
  committed (each round past 0 is one timeout that fired), and `heights_past_round_0`, how
  many of those heights needed more than one round;
- `blocks`, `elapsed_s`, `reached_target`;

then `cpu_growth_exponent`, the least-squares slope of log(CPU per height per node) over
log(n), and `idle_cpu_fraction`: the CPU share of one daemon that waits alone (its peers
never start) for `--idle-seconds`, measured from 15 s after its API answers (alone, it
still trains once for height 1).

With `--link-delay` / `--link-loss` every peer link goes through the launcher's delaying,
dropping TCP proxy (devnet/linkproxy.py).

    python bench/bench_scale.py --nodes 4,8,16,32 --blocks 10 --json
    python bench/bench_scale.py --nodes 4,8 --blocks 10 --link-delay 40ms --link-loss 1%

CPU is measured per process, so the figures hold on a shared machine; wall-clock figures
(block intervals) do not, say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devnet.launcher import (  # noqa: E402
    DevnetNode,
    DevnetSpec,
    create,
)
from devnet.linkproxy import parse_duration_ms, parse_percent  # noqa: E402
from devnet.measured_run import measured_run  # noqa: E402
from devnet.processes import start_node, stop_all  # noqa: E402
from devnet.resources import cpu_seconds  # noqa: E402
from devnet.summary import inbound_totals  # noqa: E402
from node.config import TRANSPORTS  # noqa: E402


def _gossip_in(node: DevnetNode) -> tuple[float, float]:
    """(messages, bytes) of gossip the node accepted, summed over topics, from /metrics."""
    messages, size = inbound_totals(
        node.get_text("/metrics", timeout=5.0) or "",
        ("bcfl_gossip_messages_total", "bcfl_gossip_bytes_total"),
    )
    return messages, size


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def run_one(n: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """One devnet of n nodes: its figures (see the module docstring)."""
    spec = DevnetSpec(
        directory=base / f"n{n}",
        nodes=n,
        blocks=args.blocks,
        timeout_s=args.timeout,
        update_window_s=args.update_window,
        link_delay_ms=args.link_delay_ms,
        link_loss=args.link_loss,
        transport=args.transport,
    )

    def read(nodes: list[DevnetNode]) -> tuple[list[tuple[float, float]], list[int]]:
        gossip = [_gossip_in(node) for node in nodes]
        heights = [int((node.get("/status") or {}).get("height") or 0) for node in nodes]
        return gossip, heights

    run, (gossip, heights) = measured_run(spec, read)
    chain, error, intervals, phases = run.chain, run.error, run.intervals, run.phase_medians
    reports = [run.monitor.report(node.name) for node in run.nodes]
    per_height = [r["cpu_seconds_per_height"] for r in reports if r["cpu_seconds_per_height"]]
    rss = [r["peak_rss_bytes"] for r in reports if r["peak_rss_bytes"]]
    per_node_msgs = [m / h for (m, _), h in zip(gossip, heights, strict=True) if h > 0]
    per_node_bytes = [b / h for (_, b), h in zip(gossip, heights, strict=True) if h > 0]
    rounds = [int(b.get("round") or 0) for b in chain if b["height"] >= 2]
    return {
        "nodes": n,
        "blocks": len(chain),
        "reached_target": error is None,
        "error": error,
        "elapsed_s": round(run.elapsed_s, 1),
        "block_interval_median_s": median(intervals) if intervals else None,
        "block_interval_p90_s": _p90(intervals),
        "phase_medians": phases,
        "round_changes_per_height": sum(rounds) / len(rounds) if rounds else None,
        "heights_past_round_0": sum(1 for r in rounds if r > 0),
        "cpu_seconds_per_height_per_node": median(per_height) if per_height else None,
        "cpu_seconds_per_height_per_node_max": max(per_height) if per_height else None,
        "cpu_seconds_startup_per_node": median(
            [r["cpu_seconds_startup"] for r in reports if r["cpu_seconds_startup"]] or [0.0]
        ),
        "peak_rss_bytes_per_node": max(rss) if rss else None,
        "gossip_messages_in_per_height_per_node": (
            median(per_node_msgs) if per_node_msgs else None
        ),
        "gossip_bytes_in_per_height_per_node": median(per_node_bytes) if per_node_bytes else None,
    }


def idle_cpu_fraction(base: Path, seconds: float) -> float | None:
    """CPU share of one daemon whose peers never start, after it is up, over `seconds`."""
    spec = DevnetSpec(directory=base / "idle", nodes=4)
    nodes = create(spec)
    process = start_node(nodes[0].name, nodes[0].home)
    try:
        deadline = time.monotonic() + 120.0
        while nodes[0].get("/status") is None:
            if time.monotonic() > deadline or not process.alive():
                return None
            time.sleep(0.2)
        # alone, the node still starts height 1 and trains once (torch's lazy imports): let
        # that pass, then measure what waiting costs
        time.sleep(15.0)
        before, t0 = cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        after, t1 = cpu_seconds(process.pid), time.monotonic()
    finally:
        stop_all(spec.directory, [process], grace_s=5.0)
    if before is None or after is None:
        return None
    return (after - before) / (t1 - t0)


def growth_exponent(rows: list[dict[str, Any]]) -> float | None:
    """Least-squares slope of log(CPU per height per node) against log(n)."""
    points = [
        (math.log(r["nodes"]), math.log(r["cpu_seconds_per_height_per_node"]))
        for r in rows
        if r["cpu_seconds_per_height_per_node"]
    ]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def _fmt(value: Any, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{'n':>3} {'blocks':>6} {'interval med':>12} {'p90':>7} {'cpu/h/node ms':>13} "
        f"{'rss MB':>7} {'msgs/h/node':>11} {'KB/h/node':>9}  phases (median s)"
    )
    for r in result["results"]:
        phases = " ".join(f"{k}={v:.2f}" for k, v in r["phase_medians"].items())
        print(
            f"{r['nodes']:>3} {r['blocks']:>6} {_fmt(r['block_interval_median_s']):>12} "
            f"{_fmt(r['block_interval_p90_s']):>7} "
            f"{_fmt(r['cpu_seconds_per_height_per_node'], 1000, 1):>13} "
            f"{_fmt(r['peak_rss_bytes_per_node'], 1e-6, 0):>7} "
            f"{_fmt(r['gossip_messages_in_per_height_per_node'], 1, 0):>11} "
            f"{_fmt(r['gossip_bytes_in_per_height_per_node'], 1e-3, 1):>9}  {phases}"
        )
    print(f"CPU growth exponent in n: {_fmt(result['cpu_growth_exponent'], 1, 2)}")
    print(f"idle daemon: {_fmt(result['idle_cpu_fraction'], 100, 2)}% of a core")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="4,8,16,32", help="comma-separated devnet sizes")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per devnet")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per devnet")
    parser.add_argument("--update-window", type=float, default=10.0)
    parser.add_argument("--link-delay", default="0ms", help="one-way delay per peer link")
    parser.add_argument("--link-loss", default="0%", help="chunk loss per peer link")
    parser.add_argument(
        "--transport", choices=TRANSPORTS, default="direct", help="network.transport"
    )
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="0: skip the idle run")
    parser.add_argument("--dir", default=None, help="where the devnets go (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.link_delay_ms = parse_duration_ms(args.link_delay)
    args.link_loss = parse_percent(args.link_loss)
    sizes = [int(x) for x in args.nodes.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="bcfl-bench-scale-") as tmp:
        base = Path(args.dir).resolve() if args.dir else Path(tmp)
        rows = []
        for n in sizes:
            rows.append(run_one(n, args, base))
            print(json.dumps(rows[-1]), file=sys.stderr)
        idle = idle_cpu_fraction(base, args.idle_seconds) if args.idle_seconds > 0 else None
    result = {
        "link_delay_ms": args.link_delay_ms,
        "link_loss": args.link_loss,
        "transport": args.transport,
        "results": rows,
        "cpu_growth_exponent": growth_exponent(rows),
        "idle_cpu_fraction": idle,
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
