"""Normalisation from the sites' summaries: `bcfl data summary` per site, then `bcfl genesis
--feature-stats`; the genesis declares the exact pooled mean and standard deviation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from learning import TaskSpec
from node.cli import main
from node.genesis_files import load_genesis

TASK = {
    "name": "clinic-risk",
    "features": ["age", "bmi"],
    "label": "sick",
    "kind": "binary",
    "metric": "auc",
}


def _site_csv(path: Path, rows: np.ndarray, labels: np.ndarray) -> Path:
    lines = ["age,bmi,sick"] + [f"{a},{b},{int(y)}" for (a, b), y in zip(rows, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_genesis_declares_the_pooled_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    task = tmp_path / "task.json"
    task.write_text(json.dumps(TASK))
    sites = [rng.normal([50, 25], [10, 4], (n, 2)) for n in (30, 55)]
    summaries = []
    for i, rows in enumerate(sites):
        csv = _site_csv(tmp_path / f"site{i}.csv", rows, rng.integers(0, 2, len(rows)))
        out = tmp_path / f"site{i}.json"
        assert (
            main(
                ["data", "summary", "--task-json", str(task), "--csv", str(csv), "--out", str(out)]
            )
            == 0
        )
        summaries.append(out)
    homes = []
    for i in range(2):
        home = tmp_path / f"h{i}"
        assert main(["init", "--home", str(home), "--port", str(4200 + i)]) == 0
        homes.append(home)
    infos = [str(h / "node_info.json") for h in homes]
    args = [
        "genesis",
        *infos,
        "--dataset",
        "csv",
        "--task-json",
        str(task),
        "--out",
        str(tmp_path / "g"),
    ]
    assert main([*args, "--feature-stats", *map(str, summaries)]) == 0
    genesis = load_genesis(tmp_path / "g")
    spec = TaskSpec.from_dict(genesis.task)
    pooled = np.concatenate(sites)
    assert np.allclose(spec.feature_center, pooled.mean(axis=0), rtol=1e-12)
    assert np.allclose(spec.feature_scale, pooled.std(axis=0), rtol=1e-12)


def test_a_broken_summary_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = tmp_path / "task.json"
    task.write_text(json.dumps(TASK))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"count": 3, "mean": [1.0, 2.0], "m2": [-1.0, 0.0]}))
    home = tmp_path / "h"
    assert main(["init", "--home", str(home), "--port", "4300"]) == 0
    code = main(
        [
            "genesis",
            str(home / "node_info.json"),
            "--dataset",
            "csv",
            "--task-json",
            str(task),
            "--out",
            str(tmp_path / "g"),
            "--feature-stats",
            str(bad),
        ]
    )
    assert code == 2
    assert (
        "bad.json: m2 (sums of squared deviations) must not be negative" in capsys.readouterr().err
    )
    missing = main(
        ["data", "summary", "--task-json", str(task), "--csv", str(tmp_path / "none.csv")]
    )
    assert missing == 2
    assert "none.csv: cannot read the file" in capsys.readouterr().err
