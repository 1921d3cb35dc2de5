"""Watching a devnet: the live terminal table, the Prometheus scrape config, a local Prometheus.

`bcfl devnet up` always writes `<dir>/prometheus.yml` (every node's metrics port, the alert
rules of `devnet/prometheus/alerts.yml`), so an operator can point any Prometheus at it;
`--prometheus` starts the Debian `prometheus` binary on 127.0.0.1 with it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from devnet.launcher import DevnetError, DevnetNode

T = TypeVar("T")

COLUMNS = ("name", "height", "round", "step", "peers", "metric", "sync_state", "byzantine")


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "metric":
        metric = row.get("last_metric") or {}
        value = metric.get("value")
        return f"{metric.get('name')} {value:.4f}" if isinstance(value, float) else "-"
    if column == "sync_state" and row.get("state") == "down":
        return "down"
    value = row.get(column)
    return "-" if value in (None, "") else str(value)


def render_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of node status rows."""
    cells = [[_cell(r, c) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


class LiveTable:
    """A table on the terminal that redraws as the devnet runs (a no-op when not a TTY).

    With a block target it also shows a progress bar of the lowest honest node's height.
    """

    def __init__(self, enabled: bool, blocks: int | None = None) -> None:
        self.enabled = enabled
        self.blocks = blocks
        self._live: Any = None
        self._started = 0.0

    def __enter__(self) -> LiveTable:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), refresh_per_second=2)
            self._live.__enter__()
            self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, rows: list[dict[str, Any]]) -> None:
        if self._live is None:
            return
        from rich.table import Table

        table = Table(title="bcfl devnet")
        for column in COLUMNS:
            table.add_column(column)
        for row in rows:
            table.add_row(*(_cell(row, c) for c in COLUMNS))
        if self.blocks is None:
            self._live.update(table)
            return
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        honest = [r for r in rows if r.get("byzantine") != "garbage"]
        done = min((int(r.get("height") or 0) for r in honest), default=0)
        done = min(done, self.blocks)
        elapsed = time.monotonic() - self._started
        caption = Text(f"{done}/{self.blocks} blocks committed on every node, {elapsed:.0f} s")
        self._live.update(Group(table, ProgressBar(total=self.blocks, completed=done), caption))


class Steps:
    """Progress of the devnet's set-up and wrap-up work on the terminal (silent otherwise)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def run(self, description: str, work: Callable[[], T]) -> T:
        """Run `work` under a spinner labelled `description`."""
        if not self.enabled:
            return work()
        from rich.console import Console

        console = Console(stderr=True)
        with console.status(description):
            result = work()
        console.print(f"[green]done[/green] {description}")
        return result


def write_scrape_config(directory: Path, nodes: list[DevnetNode]) -> Path:
    """Write `<dir>/prometheus.yml` scraping every node; return its path."""
    from telemetry.promconfig import ALERTS_PATH, write_prometheus_config

    path = directory / "prometheus.yml"
    targets = [(n.name, f"127.0.0.1:{n.metrics_port}") for n in nodes]
    write_prometheus_config(path, targets=targets, rules_path=ALERTS_PATH)
    return path


def start_prometheus(
    directory: Path, config: Path, ready_timeout_s: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the Debian prometheus binary on a free loopback port; return it and its URL.

    Returns once Prometheus answers `/-/ready`, so the printed URL works; raises
    DevnetError with the end of `<dir>/prometheus.log` if it exits or never gets ready.
    """
    if shutil.which("prometheus") is None:
        raise DevnetError("--prometheus needs the prometheus binary: apt-get install prometheus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = directory / "prometheus-data"
    data.mkdir(exist_ok=True)
    log = open(directory / "prometheus.log", "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout_s
    while not _ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            tail = (directory / "prometheus.log").read_text(errors="replace")[-1500:]
            raise DevnetError(f"Prometheus did not start; the end of its log:\n{tail}")
        time.sleep(0.2)
    return process, url


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
