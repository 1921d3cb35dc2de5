"""Whatever ends `bcfl devnet up`, no daemon of its devnet survives `bcfl devnet down`.

Real `bcfl devnet up` launchers (separate processes) are killed while their daemons start or
run; `bcfl devnet down` must then find and stop every daemon of the directory (issue 9,
"Process hygiene").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devnet.launcher import DevnetSpec, create, down
from devnet.processes import PIDS_FILE, daemons_of, start_node

pytestmark = pytest.mark.slow


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll `condition` every 0.1 s until true; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def recorded(directory: Path) -> dict[str, dict[str, object]]:
    try:
        return dict(json.loads((directory / PIDS_FILE).read_text()))
    except (OSError, ValueError):
        return {}


def launch(directory: Path, nodes: int, log: Path) -> subprocess.Popen[bytes]:
    """`bcfl devnet up --nodes N` (open-ended), its stderr in `log`."""
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "devnet", "up", "--nodes", str(nodes)]
            + ["--dir", str(directory), "--update-window", "2"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )


def devnet_down(directory: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "devnet", "down", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_no_daemon_survives_a_killed_launcher(tmp_path: Path, sig: signal.Signals) -> None:
    """The launcher gets `sig` once its daemons run; after `devnet down` none is left."""
    directory = tmp_path / "dn"
    log = tmp_path / "launcher.log"
    launcher = launch(directory, nodes=3, log=log)
    try:
        wait_until("3 recorded daemons", lambda: len(recorded(directory)) == 3, 180)
        wait_until("3 running daemons", lambda: len(daemons_of(directory)) == 3, 60)
        pids = [int(str(v["pid"])) for v in recorded(directory).values()]
        launcher.send_signal(sig)
        launcher.wait(timeout=60)
        if sig != signal.SIGKILL:  # a handled signal: the launcher itself stops every daemon
            assert daemons_of(directory) == [], log.read_text()
            assert not (directory / PIDS_FILE).exists(), "record kept after the nodes were gone"
        devnet_down(directory)
        assert daemons_of(directory) == []
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"daemon {pid} survived"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        down(directory)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_down_finds_daemons_missing_from_the_pid_record(tmp_path: Path) -> None:
    """A daemon the pid record does not list (the launcher died before writing it) is stopped."""
    spec = DevnetSpec(directory=tmp_path / "dn", nodes=2)
    nodes = create(spec)
    process = start_node(nodes[0].name, nodes[0].home)
    try:
        assert not (spec.directory / PIDS_FILE).exists()
        wait_until(
            "the daemon to appear in /proc", lambda: len(daemons_of(spec.directory)) == 1, 30
        )
        assert "stopped 1 node(s)" in devnet_down(spec.directory)
        process.popen.wait(timeout=30)  # type: ignore[union-attr]
        assert daemons_of(spec.directory) == []
    finally:
        if process.alive():
            os.killpg(process.pid, signal.SIGKILL)
