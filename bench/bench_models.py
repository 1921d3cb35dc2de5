"""Model-size benchmark: 4-node devnets whose model has about 1 M, 10 M and 25 M parameters.

The model is the tabular task's MLP (breast cancer, 30 features) with two hidden layers of
width w, w chosen so that the parameter count is the target (31w + w^2 + 2w + 1). For each size
it creates a devnet (devnet/launcher.py), runs it to `--blocks` blocks and reports:

- `parameters`, `model_bytes` (float32 blob payload);
- `block_interval_median_s` and `phase_medians` (node0's phase marks, heights 2 and up for the
  interval): where a block's time goes as the model grows;
- `blob_transfer_mb_per_s`: update and model blobs fetched by every node, total bytes over total
  fetch time (`bcfl_blob_transfer_bytes_total` / `bcfl_blob_transfer_duration_seconds_sum`,
  direction "in"), next to `loopback_tcp_mb_per_s`: the same number of bytes copied through one
  raw TCP connection on 127.0.0.1 in this process, measured in the same run (what the machine
  can do without libp2p, yamux, noise and the blob protocol);
- `peak_rss_bytes`: each node's peak resident memory (VmHWM), and `rss_limit_bytes`
  = 4 x model size + 350 MB (the goal of issue 12).

    python bench/bench_models.py --sizes 1e6,10e6,25e6 --blocks 4 --json
    python bench/bench_models.py --sizes 1e5 --blocks 3 --json     # a quick look

Wall-clock figures are only meaningful on a quiet machine; CPU-heavy phases (train, evaluate)
grow with the model on this 2-core box, while the transfer rate shows the network path.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import tempfile
import threading
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
)
from devnet.measured_run import measured_run  # noqa: E402
from devnet.summary import inbound_totals  # noqa: E402

FEATURES = 30
RSS_CONSTANT = 350 * 2**20


def width_for(parameters: float) -> int:
    """The hidden width w of a 30 -> w -> w -> 1 MLP with about `parameters` parameters."""
    # w^2 + 33 w + 1 - parameters = 0
    return max(1, round((-33 + math.sqrt(33**2 - 4 * (1 - parameters))) / 2))


def mlp_parameters(w: int) -> int:
    return FEATURES * w + w + w * w + w + w + 1


def loopback_mb_per_s(nbytes: int) -> float:
    """Copy `nbytes` through one TCP connection on 127.0.0.1 (1 MiB writes); MB/s."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = [0]

    def sink() -> None:
        conn, _ = server.accept()
        with conn:
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    return
                received[0] += len(chunk)

    thread = threading.Thread(target=sink)
    thread.start()
    payload = bytes(1 << 20)
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as client:
        sent = 0
        while sent < nbytes:
            piece = payload[: min(len(payload), nbytes - sent)]
            client.sendall(piece)
            sent += len(piece)
    thread.join()
    elapsed = time.perf_counter() - started
    server.close()
    return received[0] / 1e6 / elapsed


def _blob_in(node: DevnetNode) -> tuple[float, float]:
    """(bytes, seconds) of blobs the node fetched, from its /metrics."""
    size, seconds = inbound_totals(
        node.get_text("/metrics", timeout=5.0) or "",
        ("bcfl_blob_transfer_bytes_total", "bcfl_blob_transfer_duration_seconds_sum"),
    )
    return size, seconds


def run_one(parameters: float, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    w = width_for(parameters)
    n_params = mlp_parameters(w)
    spec = DevnetSpec(
        directory=base / f"p{n_params}",
        nodes=args.nodes,
        model="mlp",
        hidden=(w, w),
        blocks=args.blocks,
        timeout_s=args.timeout,
        update_window_s=args.update_window,
        attestation_s=args.update_window,
    )
    run, blobs = measured_run(spec, lambda nodes: [_blob_in(node) for node in nodes])
    moved = sum(b for b, _ in blobs)
    spent = sum(s for _, s in blobs)
    intervals = run.intervals
    model_bytes = 4 * n_params
    reports = {node.name: run.monitor.report(node.name) for node in run.nodes}
    return {
        "parameters": n_params,
        "hidden": [w, w],
        "model_bytes": model_bytes,
        "nodes": args.nodes,
        "blocks": len(run.chain),
        "model_blocks": sum(1 for b in run.chain if b.get("kind") == "model"),
        "reached_target": run.error is None,
        "error": run.error,
        "elapsed_s": round(run.elapsed_s, 1),
        "block_interval_median_s": median(intervals) if intervals else None,
        "phase_medians": run.phase_medians,
        "blob_bytes_fetched": int(moved),
        "blob_transfer_mb_per_s": round(moved / 1e6 / spent, 1) if spent > 0 else None,
        "loopback_tcp_mb_per_s": round(loopback_mb_per_s(max(int(moved), model_bytes)), 1),
        "peak_rss_bytes": {k: r["peak_rss_bytes"] for k, r in reports.items()},
        "rss_limit_bytes": 4 * model_bytes + RSS_CONSTANT,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,10e6,25e6", help="parameter counts")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per size")
    parser.add_argument("--update-window", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    try:
        sizes = [float(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be numbers separated by commas, got {args.sizes!r}")
    if any(s < 100 for s in sizes):
        parser.error("every size must be at least 100 parameters")
    results = []
    with tempfile.TemporaryDirectory(prefix="bcfl-bench-models-") as tmp:
        for size in sizes:
            result = run_one(size, args, Path(tmp))
            results.append(result)
            if not args.json:
                print(json.dumps(result), flush=True)
    if args.json:
        print(json.dumps({"runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
