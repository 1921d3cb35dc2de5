"""Benchmark of the learning engine: aggregation throughput and local training time.

Prints two tables:
1. aggregation throughput per rule, in MB/s of update bytes (8 updates of 10M float32 parameters
   by default, i.e. 320 MB per call), including hash checks and decoding, as a validator pays it;
2. local training time per epoch for the built-in tasks (one site of 8, default hyper-parameters).

Usage: python bench/bench_learning.py [--params N] [--updates K] [--threads T]
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np


def bench_aggregation(params: int, n_updates: int) -> None:
    """Time every aggregation rule on `n_updates` random deltas of `params` parameters."""
    from learning.aggregate import RULES, aggregate
    from learning.serialize import weights_to_bytes

    rng = np.random.default_rng(0)
    rows = max(1, params // 4000)
    shape = {
        "net.0.weight": (rows, params // rows),
        "net.0.bias": (params - rows * (params // rows),),
    }
    global_blob = weights_to_bytes({k: np.zeros(s, "f4") for k, s in shape.items()})
    updates = []
    for _ in range(n_updates):
        blob = weights_to_bytes(
            {k: rng.standard_normal(s, dtype=np.float32) for k, s in shape.items()}
        )
        updates.append((hashlib.sha256(blob).digest(), blob, int(rng.integers(10, 100))))
    megabytes = sum(len(u[1]) for u in updates) / 1e6
    print(f"aggregation: {n_updates} updates x {params:,} params ({megabytes:.0f} MB per call)")
    print(f"{'rule':<14}{'seconds':>10}{'MB/s':>10}")
    for rule in RULES:
        started = time.perf_counter()
        aggregate(rule, global_blob, updates)
        seconds = time.perf_counter() - started
        print(f"{rule:<14}{seconds:>10.2f}{megabytes / seconds:>10.1f}", flush=True)


def bench_training(threads: int) -> None:
    """Time one local epoch per built-in task and model on one site of eight."""
    from dataclasses import replace

    from learning.models import initial_weights
    from learning.plugin import all_sites, builtin_task
    from learning.trainer import default_train_config, train

    print(f"\nlocal training (site 0 of 8, iid, {threads} thread(s))")
    print(f"{'task':<16}{'model':<8}{'samples':>8}{'ms/epoch':>10}")
    for dataset in ("breast-cancer", "diabetes"):
        for model in ("logreg", "mlp"):
            task = builtin_task(dataset, model=model)
            data = all_sites(task, 8, "iid", seed=0)[0].train
            config = replace(default_train_config(task), epochs=20, threads=threads)
            init = initial_weights(task, 0)
            train(task, init, data, replace(config, epochs=1))  # warm-up
            started = time.perf_counter()
            train(task, init, data, config)
            per_epoch = (time.perf_counter() - started) / config.epochs * 1000
            print(f"{dataset:<16}{model:<8}{len(data):>8}{per_epoch:>10.2f}", flush=True)


def main() -> None:
    """Parse options and run both benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    bench_aggregation(args.params, args.updates)
    bench_training(args.threads)


if __name__ == "__main__":
    main()
