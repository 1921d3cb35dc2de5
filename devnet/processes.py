"""Starting, watching and stopping a devnet's node processes.

Each node is a separate `bcfl run --home DIR` process in its own session
(process group), with its output in `DIR/node.log`. The pids are recorded in
`<devnet dir>/pids.json` as each node starts, so that `bcfl devnet down` and
`bcfl devnet status` work from another terminal.

No daemon outlives its devnet, whatever ends the launcher:
- a node is started with a parent-death signal (Linux `PR_SET_PDEATHSIG`): if the
  launcher dies, even by SIGKILL, the kernel sends the node SIGTERM;
- `stop_all` signals every node at once, waits for all of them, SIGKILLs what is left,
  and removes the pid record only once every node is gone;
- `stop_all` also finds daemons of the directory that the record misses (a record lost
  with a crashed launcher, a node restarted by hand) by their command line in /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PIDS_FILE = "pids.json"
STOP_FILE = "stopping"  # present while `bcfl devnet down` stops the nodes: a deliberate end
_PR_SET_PDEATHSIG = 1


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


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive SIGTERM when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os._exit(1)

    return preexec


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
        preexec_fn=_die_with_parent(),  # noqa: PLW1509 - no threads run while the launcher forks
        env=env,
    )
    log.close()
    return NodeProcess(name=name, home=home, pid=popen.pid, popen=popen)


def start_helper(name: str, directory: Path, args: list[str]) -> NodeProcess:
    """Start `python ARGS` in `directory` (own process group, dies with us), log NAME.log."""
    log = open(directory / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it after fork
    popen = subprocess.Popen(
        [sys.executable, *args],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent(),  # noqa: PLW1509 - no threads run while the launcher forks
    )
    log.close()
    return NodeProcess(name=name, home=directory, pid=popen.pid, popen=popen)


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
    try:
        data = json.loads(path.read_text())
    except ValueError:  # a record half-written by a launcher that died: /proc still finds them
        return []
    return [NodeProcess(name, Path(v["home"]), int(v["pid"])) for name, v in sorted(data.items())]


def _proc_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def daemons_of(directory: Path) -> list[NodeProcess]:
    """Every live `bcfl run --home H` process whose home H lies inside `directory` (/proc)."""
    root = directory.resolve()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        argv = _proc_cmdline(int(entry.name))
        if "run" not in argv or "--home" not in argv[:-1]:
            continue
        if not any(a.endswith("node.cli") or a.endswith("bcfl") for a in argv[:3]):
            continue
        home = Path(argv[argv.index("--home") + 1])
        if not home.is_absolute():
            with contextlib.suppress(OSError):
                home = Path(os.readlink(f"/proc/{entry.name}/cwd")) / home
        with contextlib.suppress(OSError, ValueError):
            if home.resolve().is_relative_to(root) and pid_alive(int(entry.name)):
                found.append(NodeProcess(home.name, home, int(entry.name)))
    return found


def _signal(node: NodeProcess, sig: signal.Signals) -> None:
    """Signal the node's process group (it leads one), or the process alone if it does not."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(node.pid) == node.pid:
            os.killpg(node.pid, sig)
        else:
            os.kill(node.pid, sig)


def _wait_gone(nodes: Iterable[NodeProcess], timeout_s: float) -> list[NodeProcess]:
    """Wait until every node has exited or `timeout_s` passed; return the ones still alive."""
    deadline = time.monotonic() + timeout_s
    left = [n for n in nodes if n.alive()]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [n for n in left if n.alive()]
    return left


def stop_node(node: NodeProcess, grace_s: float = 5.0) -> None:
    """SIGTERM the node's process group, then SIGKILL it if it has not exited within grace_s."""
    stop_nodes([node], grace_s)


def stop_nodes(nodes: list[NodeProcess], grace_s: float = 10.0) -> None:
    """SIGTERM every node at once, wait up to `grace_s` for all, then SIGKILL the rest."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        left = [n for n in nodes if n.alive()]
        for node in left:
            _signal(node, sig)
        if not _wait_gone(left, wait_s):
            break
    for node in nodes:
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


def stop_all(directory: Path, nodes: list[NodeProcess], grace_s: float = 10.0) -> int:
    """Stop every node of the devnet in `directory`; return how many were running.

    `nodes` are the ones the caller knows (with their Popen, so they are reaped); the pid
    record and /proc add any other daemon of the directory. The pid record is removed only
    once every one of them is gone, so a failed stop can be retried with `bcfl devnet down`.
    """
    known = {n.pid: n for n in nodes}
    for extra in [*read_pids(directory), *daemons_of(directory)]:
        known.setdefault(extra.pid, extra)
    every = [n for n in known.values() if n.alive()]
    with _signals_deferred():
        stop_nodes(every, grace_s)
        survivors = [n for n in daemons_of(directory) if n.alive()]
        if survivors:  # started by someone while we stopped: one more pass
            stop_nodes(survivors, grace_s)
        if not any(n.alive() for n in [*every, *daemons_of(directory)]):
            (directory / PIDS_FILE).unlink(missing_ok=True)
    return len(every)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP while stopping (a second signal must not cut it short).

    Only the main thread may change signal handlers; elsewhere this does nothing.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
