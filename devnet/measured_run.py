"""One devnet run for a benchmark: start, wait for the blocks, read what the bench needs, stop.

Shared by bench/bench_scale.py and bench/bench_models.py: the nodes are started with a
resource monitor, `read(nodes)` is called while they still run (each bench scrapes its own
/metrics figures), and the chain of node0 gives the block interval (heights 2 and up, so the
start-up is not counted) and the median of each phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import median
from typing import Any, TypeVar

from devnet.launcher import DevnetError, DevnetNode, DevnetSpec, create, start, wait_for_blocks
from devnet.processes import NodeProcess, stop_all
from devnet.resources import ResourceMonitor

T = TypeVar("T")


@dataclass
class MeasuredRun:
    """What a bench reads from one devnet run."""

    nodes: list[DevnetNode]
    monitor: ResourceMonitor
    chain: list[dict[str, Any]]
    error: str | None
    elapsed_s: float

    @property
    def intervals(self) -> list[float]:
        """Block intervals of heights 2 and up, from node0's phase marks."""
        return [
            b["phases"]["block_interval"]
            for b in self.chain
            if b["height"] >= 2 and "block_interval" in (b.get("phases") or {})
        ]

    @property
    def phase_medians(self) -> dict[str, float]:
        """Each phase's median over the chain."""
        names = sorted({k for b in self.chain for k in (b.get("phases") or {})})
        return {
            k: median([b["phases"][k] for b in self.chain if k in (b.get("phases") or {})])
            for k in names
        }


def measured_run(spec: DevnetSpec, read: Callable[[list[DevnetNode]], T]) -> tuple[MeasuredRun, T]:
    """Run `spec` to `spec.blocks` blocks (or `spec.timeout_s`); `read` sees the running nodes."""
    nodes = create(spec)
    monitor = ResourceMonitor()
    processes: list[NodeProcess] = []
    started = time.monotonic()
    error = None
    try:
        start(spec.directory, nodes, processes)
        try:
            wait_for_blocks(nodes, processes, spec.blocks, spec.timeout_s, monitor=monitor)
        except DevnetError as exc:
            error = str(exc).splitlines()[0]
        elapsed = time.monotonic() - started
        chain = nodes[0].get("/chain", timeout=30.0) or []
        extra = read(nodes)
    finally:
        stop_all(spec.directory, processes, grace_s=5.0)
    return MeasuredRun(nodes, monitor, chain, error, elapsed), extra
