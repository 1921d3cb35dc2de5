"""A 4-node devnet on the example task plugin (examples/wine-task), named by its entry point.

Real `bcfl run` processes on 127.0.0.1; the plugin is importable through PYTHONPATH, as if every
site had installed the package. The genesis pins its version and code hash; every daemon checks
them before it trains.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devnet.launcher import DevnetSpec, create, start, wait_for_blocks
from devnet.processes import stop_all
from devnet.summary import collect
from learning import TaskSpec, check_installed, code_hash
from node.genesis_files import load_genesis

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wine-task"


def test_devnet_commits_model_blocks_on_the_example_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every node commits 3 blocks of the plugin's task; the result reports its metric."""
    path = os.pathsep.join(p for p in (str(EXAMPLE), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    spec = DevnetSpec(directory=tmp_path / "devnet", dataset="bcfl_wine:task", update_window_s=5.0)
    nodes = create(spec)
    task = TaskSpec.from_dict(load_genesis(nodes[0].home).task)
    assert (task.entry_point, task.version) == ("bcfl_wine:task", "1.0.0")
    assert task.code_hash == code_hash("bcfl_wine:task")
    assert check_installed(task).name == "wine"
    processes = start(spec.directory, nodes)
    try:
        wait_for_blocks(nodes, processes, 3, 240)
        result = collect(spec, nodes, 3)
    finally:
        stop_all(spec.directory, processes)
    assert result["metric_name"] == "accuracy"
    assert any(not b["carry_over"] for b in result["blocks"]), "no model block was committed"
    assert result["final_metric"] > result["genesis_metric"]
    hashes = [n["block_hashes"] for n in result["nodes"]]
    assert all(h.get("3") == hashes[0]["3"] for h in hashes)
