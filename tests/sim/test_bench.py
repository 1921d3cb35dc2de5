"""The consensus benchmark runs with real BLS and reports the documented figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_prints_json_for_a_small_network() -> None:
    """`bench/bench_consensus.py --json` commits with real BLS and reports cert size and CPU."""
    out = subprocess.run(
        [sys.executable, "bench/bench_consensus.py", "--sizes", "4", "--heights", "2", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    [row] = json.loads(out)["results"]
    assert row["validators"] == 4 and row["heights"] == 2
    # 32-byte hash + 96-byte aggregate + 1-byte bitfield, plus CBOR framing
    assert 129 <= row["improvement_certificate_bytes"] <= 260
    assert row["cpu_ms_per_height_per_validator"] > 0
    assert row["safety_violations"] == 0
