"""Consensus benchmark: CPU per committed height per validator, certificate sizes, REAL BLS.

Runs the deterministic simulator (no faults, every validator honest) with `BlsSigner` /
`BlsVerifier` for n = 4, 16, 64, 100 and prints, per n:

- CPU seconds spent inside `ConsensusCore.handle` per committed height per validator (signing,
  batch verification, certificate aggregation, the state machine; the fake learning app and the
  simulated network are not counted);
- the commit and improvement certificate sizes in bytes (goal: 96-byte aggregate + 32-byte
  hash + ceil(n/8)-byte bitfield, constant apart from the bitfield);
- for reference, the cost of one `verify` and of one same-message aggregate check over n
  signatures (what batch verification buys).

Goal from issue 2: n = 100 under 100 ms CPU per height per validator.

    python bench/bench_consensus.py            # table
    python bench/bench_consensus.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from typing import Any

from consensus.crypto import BlsSigner, BlsVerifier
from consensus.simulator import SimConfig, run_one

GOAL_SECONDS = 0.100


def verify_costs(n: int, repeat: int = 3) -> tuple[float, float]:
    """(seconds per single verify, seconds per same-message aggregate check of n signatures)."""
    signers = [BlsSigner(hashlib.sha256(f"bench|{i}".encode()).digest()) for i in range(n)]
    verifier = BlsVerifier()
    message = b"bcfl bench vote"
    signatures = [s.sign(message) for s in signers]
    keys = [s.public_key for s in signers]
    for key in keys:
        verifier.valid_public_key(key)  # warm the key cache, as a running node has it
    started = time.process_time()
    for _ in range(repeat):
        for key, sig in zip(keys, signatures, strict=True):
            assert verifier.verify(key, message, sig)
    single = (time.process_time() - started) / (repeat * n)
    started = time.process_time()
    for _ in range(repeat):
        aggregate = verifier.aggregate(signatures)
        assert verifier.verify_same_message(keys, message, aggregate)
    batch = (time.process_time() - started) / repeat
    return single, batch


def bench_size(n: int, heights: int, seed: int) -> dict[str, Any]:
    """One simulator run with real BLS for n validators."""
    config = SimConfig(validators=n, heights=heights, signer="bls")
    started = time.perf_counter()
    result = run_one(config, seed)
    wall = time.perf_counter() - started
    single, batch = verify_costs(n)
    per_height = result.cpu_seconds_per_height
    return {
        "validators": n,
        "heights": result.committed_height,
        "cpu_ms_per_height_per_validator": round(per_height * 1000, 2),
        "meets_goal": per_height < GOAL_SECONDS,
        "commit_certificate_bytes": result.commit_certificate_bytes,
        "improvement_certificate_bytes": result.improvement_certificate_bytes,
        "bitfield_bytes": (n + 7) // 8,
        "verify_ms": round(single * 1000, 3),
        "aggregate_check_ms": round(batch * 1000, 3),
        "per_vote_verify_ms_for_n": round(single * n * 1000, 2),
        "safety_violations": len(result.safety_violations),
        "wall_seconds": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,16,64,100", help="comma-separated validator counts")
    parser.add_argument("--heights", type=int, default=3, help="heights to commit per size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = [bench_size(n, args.heights, args.seed) for n in sizes]
    if args.json:
        print(json.dumps({"goal_ms": GOAL_SECONDS * 1000, "results": rows}, sort_keys=True))
    else:
        header = (
            f"{'n':>4} {'heights':>7} {'CPU ms/height/validator':>24} {'goal':>5} "
            f"{'commit cert B':>13} {'improve cert B':>14} {'bitfield B':>10} "
            f"{'verify ms':>9} {'agg check ms':>12} {'n x verify ms':>13}"
        )
        print(header)
        print("-" * len(header))
        for r in rows:
            print(
                f"{r['validators']:>4} {r['heights']:>7} "
                f"{r['cpu_ms_per_height_per_validator']:>24.2f} "
                f"{'ok' if r['meets_goal'] else 'MISS':>5} "
                f"{r['commit_certificate_bytes']:>13} {r['improvement_certificate_bytes']:>14} "
                f"{r['bitfield_bytes']:>10} {r['verify_ms']:>9.3f} {r['aggregate_check_ms']:>12.3f} "
                f"{r['per_vote_verify_ms_for_n']:>13.2f}"
            )
    failed = any(r["safety_violations"] or r["heights"] < args.heights for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
