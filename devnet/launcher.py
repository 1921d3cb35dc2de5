"""`bcfl devnet up`: N hospitals on one machine, each a real `bcfl run` process on loopback.

What it does, in order:
1. creates N node homes under `--dir` (keys mode 0600, config with free loopback ports,
   every node bootstrapping to every other), one data partition of the built-in data per site;
2. builds one genesis from the nodes' public keys and proofs of possession, the task and the
   rules, and installs it (with the initial model) in every home;
3. starts the N daemons as separate processes (own process groups; pids in `pids.json`);
4. watches them over their local HTTP APIs (a live table on a terminal), until `--blocks`
   blocks are committed on every honest node or Ctrl-C;
5. stops every process it started and, with `--json`, prints the run's result: per node the
   block hash at every height, per block the task metric of the committed model on the
   held-out test split (which no site trains on), whether it was a carry-over and the phase
   timings, and the genesis, final and centralized (pooled data) metrics.

Observers (`--observers K`) follow and verify the chain without a seat in the genesis; the
validators admit them through `network.observers`.
Byzantine nodes (`--byzantine KIND:COUNT`) are the last COUNT nodes: `poison` sign-flips its
updates, `garbage` floods every topic with malformed messages and RPC frames, `equivocate`
also signs a nil vote for every block it votes for (caught as evidence, then slashed).
The insider kinds of issue 10 (docs/THREAT-MODEL.md): `timestamp` stamps its proposals far in the
future, `inflate` claims 10^9 samples, `rule-swap` declares the rule "median", `double-propose`
signs two versions of each proposal (consensus/sim/insider.py, applied by node/driver.py),
`secagg-silent` (with --secure-aggregation) publishes its masked update and never reveals,
`forge-rejection` rejects an honest update as an outlier when it proposes, and `drift` adds
noise of the update's own norm to its update, small enough to pass screening (node/app.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.types import Privacy
from devnet.linkproxy import LINKS_FILE, write_links
from devnet.processes import (
    PIDS_FILE,
    STOP_FILE,
    NodeProcess,
    daemons_of,
    read_pids,
    start_helper,
    start_node,
    stop_all,
    write_pids,
)
from devnet.resources import ResourceMonitor
from node.config import BYZANTINE_BEHAVIOURS

BYZANTINE_KINDS = tuple(kind for kind in BYZANTINE_BEHAVIOURS if kind)
"""What `--byzantine KIND:N` accepts: the behaviours a node config may name."""
SETTLE_S = 10.0
"""How long `wait_for_blocks` goes on sampling past its block target for CPU per height."""


class DevnetError(Exception):
    """A devnet could not be set up or run (one sentence)."""


@dataclass
class DevnetSpec:
    """Everything `bcfl devnet up` was asked for."""

    directory: Path
    nodes: int = 4
    dataset: str = "breast-cancer"
    partition: str = "iid"
    model: str | None = None  # None: the task's own default model
    hidden: tuple[int, ...] | None = None  # the MLP's hidden widths (None: the task's own)
    rule: str = "fedavg"
    seed: int = 0
    blocks: int | None = None
    byzantine: tuple[str, int] | None = None
    observers: int = 0
    timeout_s: float = 900.0
    update_window_s: float = 10.0
    attestation_s: float = 10.0
    metrics: bool = True  # False: no exporter and every metric call a no-op (to measure cost)
    chain_id: str = "bcfl-devnet"
    link_delay_ms: float = 0.0  # one-way delay of every peer link (devnet/linkproxy.py)
    link_loss: float = 0.0  # fraction of chunks each link drops (the stream is then reset)
    join_at: int | None = None  # a site outside the genesis joins by governance (lifecycle.py)
    leave_at: int | None = None  # the last site is removed by governance and stopped
    extra_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    privacy: Privacy | None = None  # the genesis privacy policy (None: off)
    max_regression: float | None = None  # genesis safeguards.max_regression (None: default)
    transport: str = "direct"  # every node's network.transport (node/network/direct.py)


def parse_byzantine(value: str | None, nodes: int) -> tuple[str, int] | None:
    """Parse "KIND:COUNT" (KIND one of BYZANTINE_KINDS)."""
    if not value:
        return None
    kind, _, count = value.partition(":")
    if kind not in BYZANTINE_KINDS or not count.isdigit():
        raise DevnetError(
            f"--byzantine must be KIND:COUNT with KIND one of {', '.join(BYZANTINE_KINDS)}"
            f", got {value!r}"
        )
    if int(count) >= nodes:
        raise DevnetError(f"--byzantine {value}: at least one of the {nodes} nodes must be honest")
    return kind, int(count)


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class DevnetNode:
    """One node of the devnet as the launcher knows it."""

    name: str
    home: Path
    api_port: int
    metrics_port: int
    byzantine: str = ""
    observer: bool = False
    joiner: bool = False  # outside the genesis: started and added by devnet/lifecycle.py

    def post(self, path: str, body: dict[str, Any], timeout: float = 10.0) -> Any:
        """POST JSON to the node's local API; the JSON answer (an error's too)."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - loopback
            f"http://127.0.0.1:{self.api_port}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def get(self, path: str, timeout: float = 2.0) -> Any:
        """GET a JSON path of the node's local API; None when it does not answer."""
        text = self.get_text(path, timeout)
        try:
            return None if text is None else json.loads(text)
        except ValueError:
            return None

    def get_text(self, path: str, timeout: float = 2.0) -> str | None:
        """GET a path of the node's local API as text; None when it does not answer."""
        url = f"http://127.0.0.1:{self.api_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return str(reply.read().decode())
        except (urllib.error.URLError, OSError, UnicodeDecodeError):
            return None


def create(spec: DevnetSpec) -> list[DevnetNode]:
    """Create the node homes and the genesis; return the nodes (nothing started yet)."""
    from consensus.types import Timeouts
    from learning import DataError, builtin_task, default_train_config
    from node.cli import main as bcfl
    from node.config import load_config, save_config
    from node.genesis_files import build_genesis, write_genesis
    from node.nodeinfo import read_node_info

    try:
        task = builtin_task(spec.dataset, model=spec.model, hidden=spec.hidden)
    except DataError as exc:
        raise DevnetError(str(exc)) from None
    directory = spec.directory
    if any(n.alive() for n in read_pids(directory)) or daemons_of(directory):
        raise DevnetError(f"a devnet is already running in {directory}; run bcfl devnet down first")
    directory.mkdir(parents=True, exist_ok=True)
    bad: dict[int, str] = {}
    if spec.byzantine:
        kind, count = spec.byzantine
        bad = {spec.nodes - 1 - i: kind for i in range(count)}
    joiners = 1 if spec.join_at is not None else 0
    total = spec.nodes + spec.observers + joiners
    sites = spec.nodes + joiners  # the joiner gets its own slice of the data
    ports = free_ports(3 * total)
    wan = spec.link_delay_ms > 0 or spec.link_loss > 0
    proxy_ports = free_ports(total) if wan else []
    nodes: list[DevnetNode] = []
    infos = []
    for i in range(total):
        joiner = i >= spec.nodes + spec.observers
        observer = i >= spec.nodes and not joiner
        site = spec.nodes if joiner else i
        name = f"observer{i - spec.nodes}" if observer else f"node{site}"
        home = directory / name
        if home.exists():
            _remove_home(home)
        p2p, api, metrics = ports[3 * i : 3 * i + 3]
        args = [
            "init",
            "--home",
            str(home),
            "--name",
            name,
            "--port",
            str(p2p),
            "--api-port",
            str(api),
            "--metrics-port",
            str(metrics if spec.metrics else 0),
            "--roles",
            "observer" if observer else "validator,trainer",
            "--dataset",
            spec.dataset,
            "--site-index",
            str(0 if observer else site),
            "--site-count",
            str(sites),
            "--partition",
            spec.partition,
            "--seed",
            str(spec.seed),
            "--json",
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            if bcfl(args) != 0:
                raise DevnetError(f"could not create the home of {name}")
        infos.append(read_node_info(home / "node_info.json"))
        nodes.append(
            DevnetNode(name, home, api, metrics, bad.get(i, ""), observer=observer, joiner=joiner)
        )

    train = default_train_config(task)
    members = infos[: spec.nodes]
    observer_ids = [x["peer_id"] for x in infos[spec.nodes : spec.nodes + spec.observers]]
    links = write_links(
        directory, spec.link_delay_ms, spec.link_loss, spec.seed, infos, proxy_ports
    )
    for node, info in zip(nodes, infos, strict=True):
        config = load_config(node.home / "config.toml")
        config.network.bootstrap = [
            links.get(x["multiaddr"], x["multiaddr"]) for x in members if x is not info
        ]
        if not node.observer:
            config.network.observers = list(observer_ids)
        config.training.local_epochs = train.epochs
        config.training.batch_size = train.batch_size
        config.training.learning_rate = train.lr
        config.training.optimizer = train.optimizer
        config.byzantine.behaviour = node.byzantine
        config.metrics.enabled = spec.metrics
        config.network.transport = spec.transport
        for table, values in spec.extra_config.items():
            for key, value in values.items():
                setattr(getattr(config, table), key, value)
        save_config(config, node.home / "config.toml")

    timeouts = Timeouts(update_window=spec.update_window_s, attestation=spec.attestation_s)
    genesis, model = build_genesis(
        members,
        chain_id=spec.chain_id,
        task=task,
        init_seed=spec.seed,
        rule=spec.rule,
        timeouts=timeouts,
        privacy=spec.privacy,
        max_regression=spec.max_regression,
    )
    for node in nodes:
        write_genesis(node.home, genesis, model)
    (directory / "devnet.json").write_text(
        json.dumps(
            {
                "nodes": [
                    {
                        "name": n.name,
                        "home": str(n.home),
                        "api_port": n.api_port,
                        "metrics_port": n.metrics_port,
                        "byzantine": n.byzantine,
                        "observer": n.observer,
                        "joiner": n.joiner,
                    }
                    for n in nodes
                ],
                "dataset": spec.dataset,
                "seed": spec.seed,
                "model": task.model,
            },
            indent=2,
        )
    )
    return nodes


def _remove_home(home: Path) -> None:
    import shutil

    shutil.rmtree(home)


def load_nodes(directory: Path) -> list[DevnetNode]:
    """The nodes recorded in `<dir>/devnet.json` by `create`."""
    path = directory / "devnet.json"
    if not path.exists():
        raise DevnetError(f"{directory} holds no devnet (no devnet.json); run bcfl devnet up first")
    data = json.loads(path.read_text())
    return [
        DevnetNode(
            n["name"],
            Path(n["home"]),
            n["api_port"],
            n["metrics_port"],
            n["byzantine"],
            n.get("observer", False),
            n.get("joiner", False),
        )
        for n in data["nodes"]
    ]


def start(
    directory: Path, nodes: list[DevnetNode], processes: list[NodeProcess] | None = None
) -> list[NodeProcess]:
    """Start every node's daemon, recording each pid as it starts; return the processes.

    Pass `processes` to have them appended as they start: a signal in the middle of the
    start-up then still leaves the caller every process to stop.
    """
    processes = [] if processes is None else processes
    (directory / STOP_FILE).unlink(missing_ok=True)
    helpers = []
    if (directory / LINKS_FILE).exists():  # WAN links: the proxy first, in the pid record
        helpers.append(start_helper("linkproxy", directory, ["-m", "devnet.linkproxy", LINKS_FILE]))
    for node in nodes:
        if node.joiner:
            continue  # started by devnet/lifecycle.py at its height
        processes.append(start_node(node.name, node.home))
        write_pids(directory, helpers + processes)
    return processes


def snapshot(nodes: list[DevnetNode]) -> list[dict[str, Any]]:
    """Each node's `/status` (or a row saying it is down)."""
    rows = []
    for node in nodes:
        status = node.get("/status", timeout=1.0)
        rows.append(status if status else {"name": node.name, "state": "down"})
        rows[-1]["byzantine"] = node.byzantine
    return rows


def wait_for_blocks(
    nodes: list[DevnetNode],
    processes: list[NodeProcess],
    blocks: int | None,
    timeout_s: float,
    on_tick: Callable[[list[dict[str, Any]]], None] = lambda rows: None,
    on_exit: Callable[[str], None] = lambda message: None,
    monitor: ResourceMonitor | None = None,
) -> None:
    """Poll until every honest node has `blocks` blocks, or forever when `blocks` is None.

    A node process that exits fails a run with a block target (something is wrong). An
    open-ended run reports it once through `on_exit` and goes on, so a researcher can kill
    and restart nodes by hand; it ends only when every node is gone.
    """
    deadline = time.monotonic() + timeout_s
    settle: float | None = None
    reported: set[str] = set()
    directory = nodes[0].home.parent
    all_nodes, all_procs = nodes, processes
    while True:
        # the lists may change under us: devnet/lifecycle.py starts and stops sites
        live, procs = all_nodes[: len(all_procs)], all_procs[: len(all_nodes)]
        honest = [i for i, n in enumerate(live) if n.byzantine != "garbage"]
        rows = snapshot(live)
        on_tick(rows)
        if len(all_nodes) != len(live) or len(all_procs) != len(procs):
            continue  # a site was started or stopped: look again
        if monitor is not None:
            for node, process, row in zip(live, procs, rows, strict=True):
                monitor.sample(node.name, process.pid, int(row.get("height") or 0))
        if blocks is None and (
            (directory / STOP_FILE).exists() or not (directory / PIDS_FILE).exists()
        ):
            return  # `bcfl devnet down` is stopping the nodes: a deliberate end
        for node, process in zip(live, procs, strict=True):
            if process.alive() or node.name in reported:
                continue
            tail = (node.home / "node.log").read_text(errors="replace")[-2000:]
            message = f"{node.name} exited; the end of its log:\n{tail}"
            if blocks is not None:
                raise DevnetError(message)
            reported.add(node.name)
            on_exit(message)
        if len(reported) == len(live):
            raise DevnetError("every node of the devnet has exited")
        if blocks is not None and all((rows[i].get("height") or 0) >= blocks for i in honest):
            # a fast devnet commits a short run between two samples: keep sampling (a few
            # seconds at most) until every node's CPU per height has two heights to come from
            if settle is None:
                settle = time.monotonic() + SETTLE_S
            complete = monitor is None or monitor.complete([live[i].name for i in honest])
            if complete or time.monotonic() > settle:
                return
        if blocks is not None and time.monotonic() > deadline:
            raise DevnetError(f"the devnet did not reach {blocks} blocks within {timeout_s:.0f} s")
        time.sleep(0.5)


def down(directory: Path) -> int:
    """Stop every daemon of the devnet in `directory`; return how many were running.

    The daemons are found in `<dir>/pids.json` and, should the launcher have died without
    it, by their command line (devnet/processes.py). While they stop, `<dir>/stopping`
    tells a launcher still watching them that their exits are deliberate.
    """
    marker = directory / STOP_FILE
    if directory.is_dir():
        marker.touch()
    try:
        return stop_all(directory, [])
    finally:
        marker.unlink(missing_ok=True)
