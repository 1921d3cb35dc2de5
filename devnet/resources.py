"""What each devnet node costs the machine, read from /proc while the devnet runs.

`ResourceMonitor.sample` is called on every poll of the launcher with each node's height;
it reads the process's CPU time (user + system, all threads: `/proc/PID/stat` fields 14
and 15) and its peak resident set (`VmHWM` in `/proc/PID/status`). The CPU per height is
the slope between the first sample at which the node had committed a block and the last
sample: the start-up (imports, genesis load, first dials) is reported apart, as
`cpu_seconds_startup`, because a long run would otherwise hide it and a short one be
dominated by it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (all its threads), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_bytes(pid: int) -> int | None:
    """The process's peak resident set size (VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class NodeUsage:
    """The samples of one node: (height, cpu seconds) pairs and the peak RSS seen."""

    samples: list[tuple[int, float]] = field(default_factory=list)
    peak_rss: int = 0

    def add(self, height: int, pid: int) -> None:
        cpu = cpu_seconds(pid)
        if cpu is not None:
            self.samples.append((height, cpu))
        rss = peak_rss_bytes(pid)
        if rss is not None:
            self.peak_rss = max(self.peak_rss, rss)

    def report(self) -> dict[str, Any]:
        """`cpu_seconds_per_height`, `peak_rss_bytes` and the totals they come from."""
        out: dict[str, Any] = {
            "cpu_seconds_per_height": None,
            "peak_rss_bytes": self.peak_rss or None,
            "cpu_seconds": self.samples[-1][1] if self.samples else None,
            "cpu_seconds_startup": None,
        }
        first = next((s for s in self.samples if s[0] >= 1), None)
        if first is not None:
            out["cpu_seconds_startup"] = first[1]
            last = self.samples[-1]
            if last[0] > first[0]:
                out["cpu_seconds_per_height"] = (last[1] - first[1]) / (last[0] - first[0])
        return out


class ResourceMonitor:
    """Per-node CPU and memory of a running devnet (Linux /proc; empty elsewhere)."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeUsage] = {}

    def sample(self, name: str, pid: int, height: int) -> None:
        self.nodes.setdefault(name, NodeUsage()).add(height, pid)

    def report(self, name: str) -> dict[str, Any]:
        return self.nodes.get(name, NodeUsage()).report()

    def complete(self, names: list[str]) -> bool:
        """Whether every named node has a CPU-per-height figure (two heights after its first)."""
        return all(self.report(name)["cpu_seconds_per_height"] is not None for name in names)
