"""Per-node CPU and memory figures of a devnet (devnet/resources.py)."""

from __future__ import annotations

import os

from devnet.resources import NodeUsage, ResourceMonitor, cpu_seconds, peak_rss_bytes


def test_reads_this_process_from_proc() -> None:
    """CPU seconds and peak RSS of a live process are positive numbers."""
    assert (cpu_seconds(os.getpid()) or 0) > 0
    assert (peak_rss_bytes(os.getpid()) or 0) > 1_000_000


def test_gone_process_reads_as_none() -> None:
    """A pid that does not exist gives None, not an exception."""
    assert cpu_seconds(2**22 + 1) is None and peak_rss_bytes(2**22 + 1) is None


def test_cpu_per_height_is_the_slope_after_the_first_commit() -> None:
    """Start-up CPU (before height 1) is reported apart, not spread over the heights."""
    usage = NodeUsage(samples=[(0, 1.0), (0, 5.0), (1, 6.0), (3, 6.5), (5, 7.0)], peak_rss=10)
    report = usage.report()
    assert report["cpu_seconds_per_height"] == (7.0 - 6.0) / (5 - 1)
    assert report["cpu_seconds_startup"] == 6.0
    assert report["peak_rss_bytes"] == 10


def test_no_commit_means_no_per_height_figure() -> None:
    """A node that never committed has no CPU per height (None), whatever it spent."""
    monitor = ResourceMonitor()
    monitor.sample("node0", os.getpid(), 0)
    assert monitor.report("node0")["cpu_seconds_per_height"] is None
    assert monitor.report("unknown")["peak_rss_bytes"] is None


def test_the_monitor_is_complete_only_when_every_node_has_two_heights_after_its_first() -> None:
    """A short run that commits between two samples has no CPU per height yet: `complete` says
    so, and `wait_for_blocks` keeps sampling past its target until it is."""
    monitor = ResourceMonitor()
    pid = os.getpid()
    monitor.sample("a", pid, 0)
    monitor.sample("a", pid, 4)
    monitor.sample("b", pid, 1)
    monitor.sample("b", pid, 3)
    assert not monitor.complete(["a", "b"])  # a: one sample at a height >= 1
    monitor.sample("a", pid, 5)
    assert monitor.complete(["a", "b"])
    assert not monitor.complete(["a", "b", "c"])  # never sampled
