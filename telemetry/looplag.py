"""Event-loop lag: how late trio wakes a task that asked to sleep.

Consensus timeouts and gossip handling run on one trio loop; anything that
blocks it (a synchronous call that should have gone to a worker thread, a huge
decode) delays every vote. The monitor sleeps `interval_s`, measures how much
later than asked it woke up, and records that excess in
`bcfl_event_loop_lag_seconds`. The idea is Node.js's `monitorEventLoopDelay`
and asyncio's slow-callback warning; a lag that stays above ~100 ms means the
node votes late.
"""

from __future__ import annotations

import trio

from telemetry.metrics import NodeMetrics


class LoopLagMonitor:
    """A trio service that samples the event-loop lag every `interval_s` seconds."""

    def __init__(self, metrics: NodeMetrics, interval_s: float = 0.25) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.metrics = metrics
        self.interval_s = interval_s
        self.last_lag_s = 0.0
        self.samples = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample until cancelled."""
        task_status.started()
        while True:
            asked = trio.current_time() + self.interval_s
            await trio.sleep_until(asked)
            self.last_lag_s = max(0.0, trio.current_time() - asked)
            self.samples += 1
            self.metrics.observe_loop_lag(self.last_lag_s)
