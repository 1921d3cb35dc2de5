"""Privacy benchmark: the same devnet with and without the genesis DP policy, side by side.

Runs `bcfl devnet up --json` twice on this machine (real daemons on 127.0.0.1), once with
`--dp-epsilon E` (noise calibrated to last `--dp-rounds` releases) and once without, and prints

    {"dp": {...}, "plain": {...}}

each with `final_metric`, `genesis_metric`, `metric_name`, `blocks`, `model_blocks`,
`carry_overs` (reason -> count), the ledger's per-member `epsilon_spent` and its maximum, and,
for "dp", the genesis `privacy` policy (docs/THREAT-MODEL.md "Differential privacy").

    python bench/bench_privacy.py --dp-epsilon 2 --blocks 40
    python bench/bench_privacy.py --dp-epsilon 2 --blocks 8 --dp-rounds 4   # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any


def devnet(directory: Path, blocks: int, nodes: int, timeout_s: float, extra: list[str]) -> Any:
    """The JSON of one `bcfl devnet up` run (None when it failed; stderr is passed through)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli",
            "devnet",
            "up",
            "--dir",
            str(directory),
            "--nodes",
            str(nodes),
            "--blocks",
            str(blocks),
            "--timeout",
            str(timeout_s),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s + 300,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        return None
    return json.loads(done.stdout)


def summary(result: Any) -> dict[str, Any]:
    """What the comparison needs from one devnet result."""
    if result is None:
        return {"error": "the devnet did not finish; see stderr"}
    blocks = result["blocks"]
    ledger = result.get("ledger") or {}
    epsilon = {name: row.get("epsilon_spent", 0.0) for name, row in sorted(ledger.items())}
    return {
        "metric_name": result["metric_name"],
        "final_metric": result["final_metric"],
        "genesis_metric": result["genesis_metric"],
        "blocks": len(blocks),
        "model_blocks": sum(1 for b in blocks if not b["carry_over"]),
        "carry_overs": dict(
            Counter(b["carry_over_reason"] for b in blocks if b["carry_over"]).most_common()
        ),
        "epsilon_spent": epsilon,
        "epsilon_spent_max": max(epsilon.values(), default=0.0),
        "privacy": result.get("privacy"),
        "sites": {n["name"]: n.get("privacy") for n in result["nodes"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dp-epsilon", type=float, default=2.0, help="per-site budget")
    parser.add_argument("--dp-rounds", type=int, default=20, help="releases it should last")
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as tmp:
        dp_flags = ["--dp-epsilon", str(args.dp_epsilon), "--dp-rounds", str(args.dp_rounds)]
        dp = devnet(Path(tmp) / "dp", args.blocks, args.nodes, args.timeout, dp_flags)
        plain = devnet(Path(tmp) / "plain", args.blocks, args.nodes, args.timeout, [])
    print(json.dumps({"dp": summary(dp), "plain": summary(plain)}, indent=2, sort_keys=True))
    return 0 if dp is not None and plain is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
