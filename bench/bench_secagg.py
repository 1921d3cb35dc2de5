"""Benchmark of secure aggregation (learning/secagg): the per-height cost and the blob overhead.

For each number of trainers n and model size d, one session of the protocol is run with real
participants and every step is timed:
- `key_agreement_s`: per trainer, steps 1-2 (two X25519 key pairs, Shamir shares of the self
  seed and the mask key, one X25519 + HKDF + ChaCha20-Poly1305 per share holder, and opening
  the shares received);
- `masking_s`: per trainer, step 3 (quantise, one ChaCha20 mask for the self seed and one per
  neighbour, mod 2^32 sums);
- `unmasking_s`: for the aggregator (and every validator or `bcfl chain verify` that
  recomputes), step 4 with one trainer silent after masking (its self seed from shares; from
  n = 6, below that the threshold would not be met) and one dropped before masking (its pair masks recomputed from its recovered key): Shamir
  recovery plus the sum of n masked blobs minus the masks;
- `masked_blob_bytes` against `plain_blob_bytes` (the float32 safetensors update) and
  `overhead_bytes_per_trainer`: what the protocol adds on the wire per trainer per height
  (keys, sealed shares, the reveal).
Modes: `all-pairs` (Bonawitz et al.) and `secagg+` (2 ceil(log2 n) neighbours, Bell et al.).
Prints one JSON object: {"runs": [...]} with those keys per (mode, n, d).

Usage: python bench/bench_secagg.py [--quick] [--nodes 4,8,16] [--params 10000,1000000,10000000]
(`--quick`: n = 4, 8 and d = 10k only, a few seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np


def bench_session(n: int, d: int, neighbours: int) -> dict[str, Any]:
    """Time one session of n participants with d coordinates; one late and one early dropout."""
    from learning.secagg import SecAggParams
    from learning.secagg.primitives import KEY_BYTES, session_id
    from learning.secagg.protocol import SEALED_BYTES, Participant
    from learning.secagg.shamir import SHARE_BYTES
    from learning.secagg.unmask import masked_sum, unmask
    from learning.serialize import weights_to_bytes

    params = SecAggParams(neighbours=neighbours)
    session = session_id("bench", 1, bytes(32))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    parts = {i: Participant(i, params, session) for i in range(n)}
    adverts = {i: p.advertise() for i, p in parts.items()}
    sealed = [m for p in parts.values() for m in p.share_keys(adverts)]
    shared = frozenset(parts)
    for p in parts.values():
        p.receive_shares(sealed)
    key_agreement = (time.perf_counter() - t0) / n
    early = n - 1  # silent before masking: excluded, its pair masks recovered
    late = 0 if n >= 6 else -1  # silent after masking: included, its self seed from shares
    masked: dict[int, bytes] = {}
    masking = 0.0
    for i, p in parts.items():
        if i == early:
            continue
        update = rng.normal(0.0, 0.01, d)
        t0 = time.perf_counter()
        masked[i] = p.masked_input(update, shared)
        masking += time.perf_counter() - t0
    reveals = [p.reveal(shared, masked) for i, p in parts.items() if i not in (early, late)]
    t0 = time.perf_counter()
    record = unmask(params, session, adverts, shared, masked, reveals)
    masked_sum(params, session, adverts, shared, masked, record, d)
    unmasking = time.perf_counter() - t0
    plain = len(weights_to_bytes({"w": np.zeros(d, dtype=np.float32)}))
    holders = len(sealed) / n
    reveal_bytes = sum(len(r.seed_shares) + len(r.key_shares) for r in reveals) / len(reveals)
    return {
        "mode": "all-pairs" if neighbours == 0 else "secagg+",
        "nodes": n,
        "params": d,
        "neighbours": int(holders) - 1,
        "dropouts": {"before_masking": 1, "after_masking": int(late >= 0)},
        "key_agreement_s": round(key_agreement, 6),
        "masking_s": round(masking / len(masked), 6),
        "unmasking_s": round(unmasking, 6),
        "plain_blob_bytes": plain,
        "masked_blob_bytes": len(next(iter(masked.values()))),
        "overhead_bytes_per_trainer": int(
            2 * KEY_BYTES + holders * SEALED_BYTES + reveal_bytes * (4 + SHARE_BYTES)
        ),
    }


def main() -> None:
    """Run the grid and print the JSON object."""
    from learning.secagg import secagg_plus_degree

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 4, 8 and d = 10k only")
    parser.add_argument("--nodes", default="4,8,16")
    parser.add_argument("--params", default="10000,1000000,10000000")
    args = parser.parse_args()
    nodes = [4, 8] if args.quick else [int(x) for x in args.nodes.split(",")]
    sizes = [10_000] if args.quick else [int(x) for x in args.params.split(",")]
    runs = []
    for d in sizes:
        for n in nodes:
            modes = {0, secagg_plus_degree(n) if secagg_plus_degree(n) < n - 1 else 0}
            for k in sorted(modes):
                runs.append(bench_session(n, d, k))
    print(json.dumps({"runs": runs}, indent=1))


if __name__ == "__main__":
    main()
