"""Starting, watching and stopping a devnet's node processes.

Each node is a separate `bcfl run --home DIR` process in its own session
(process group), with its output in `DIR/node.log`. The pids are recorded in
`<devnet dir>/pids.json` so that `bcfl devnet down` and `bcfl devnet status`
work from another terminal. Stopping sends SIGTERM to each group, waits, then
SIGKILLs what is left: Ctrl-C on `devnet up` never leaves a node behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PIDS_FILE = "pids.json"


@dataclass
class NodeProcess:
    """One running node daemon."""

    name: str
    home: Path
    pid: int
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def start_node(name: str, home: Path, extra_env: dict[str, str] | None = None) -> NodeProcess:
    """Start `bcfl run --home HOME` as its own process group, logging to HOME/node.log."""
    log = open(home / "node.log", "ab")  # noqa: SIM115 - the child owns it after fork
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra_env or {})
    popen = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "run", "--home", str(home)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    log.close()
    return NodeProcess(name=name, home=home, pid=popen.pid, popen=popen)


def write_pids(directory: Path, nodes: list[NodeProcess]) -> None:
    """Record the running nodes so that another `bcfl devnet` command can find them."""
    data = {n.name: {"pid": n.pid, "home": str(n.home)} for n in nodes}
    tmp = directory / (PIDS_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(directory / PIDS_FILE)


def read_pids(directory: Path) -> list[NodeProcess]:
    """The nodes recorded by `write_pids`, or an empty list if there is no record."""
    path = directory / PIDS_FILE
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [NodeProcess(name, Path(v["home"]), int(v["pid"])) for name, v in sorted(data.items())]


def stop_node(node: NodeProcess, grace_s: float = 5.0) -> None:
    """SIGTERM the node's process group, then SIGKILL it if it has not exited within grace_s."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        if not node.alive():
            break
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while node.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    if node.popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.popen.wait(timeout=1.0)


def kill_node(node: NodeProcess) -> None:
    """SIGKILL the node's process group at once (crash simulation)."""
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if node.popen is not None:
        node.popen.wait(timeout=10.0)


def stop_all(directory: Path, nodes: list[NodeProcess]) -> None:
    """Forget the pid record, then stop every node.

    The record goes first: a `bcfl devnet up` watching the nodes sees it vanish and knows
    that the exits which follow are deliberate.
    """
    (directory / PIDS_FILE).unlink(missing_ok=True)
    for node in nodes:
        stop_node(node)
