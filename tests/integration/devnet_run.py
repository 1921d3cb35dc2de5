"""Run `bcfl devnet up ... --json` to completion as a separate process; return its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def devnet_json(tmp_path: Path, *args: str, timeout_s: int = 240) -> dict[str, Any]:
    """The JSON of a `bcfl devnet up --dir tmp_path/dn --json` run (it must exit 0)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli",
            "devnet",
            "up",
            "--dir",
            str(tmp_path / "dn"),
            "--json",
            "--timeout",
            str(timeout_s),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s + 160,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result
