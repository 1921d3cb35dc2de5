"""`bench/bench_scale.py` runs a real devnet and reports the figures issue 9 names (a smoke)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a bench/ script (`args[0]`) with its arguments from the repository root."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_bench_scale_reports_every_figure_for_a_small_devnet(tmp_path: Path) -> None:
    """--nodes 4 --blocks 20 (enough CPU samples after the first commit: 3 blocks now take under a second): intervals, phases, CPU and RSS per node, gossip per height."""
    done = _bench(
        *["bench/bench_scale.py", "--nodes", "4", "--blocks", "20", "--json"],
        *["--timeout", "240", "--idle-seconds", "3", "--dir", str(tmp_path)],
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    [row] = result["results"]
    assert row["nodes"] == 4 and row["reached_target"] and row["blocks"] >= 3
    assert row["block_interval_median_s"] > 0 and row["block_interval_p90_s"] > 0
    assert {"train", "block_interval"} <= set(row["phase_medians"])
    assert row["cpu_seconds_per_height_per_node"] > 0
    assert row["peak_rss_bytes_per_node"] > 50e6
    assert row["gossip_messages_in_per_height_per_node"] > 0
    assert row["gossip_bytes_in_per_height_per_node"] > 0
    assert 0 <= row["round_changes_per_height"] <= 10
    assert 0 <= row["heights_past_round_0"] <= row["blocks"] - 1
    assert result["cpu_growth_exponent"] is None  # one size: nothing to fit
    assert 0 <= result["idle_cpu_fraction"] < 1
    assert not list(tmp_path.glob("*/pids.json")), "a devnet was left running"


def test_bench_direct_reports_the_cost_of_one_message() -> None:
    """`bench/bench_direct.py` (a smoke): every message delivered, a positive CPU figure per
    message, and bad arguments refused in one line."""
    done = _bench(
        "bench/bench_direct.py", "--messages", "200", "--repeat", "1", "--json", timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["messages"] == 200 and result["size_bytes"] == 300
    assert 0 < result["cpu_us_per_message"] < 1e6 and result["wall_us_per_message"] > 0
    bad = _bench("bench/bench_direct.py", "--size", "0", timeout=60)
    assert bad.returncode == 2 and "--size" in bad.stderr
