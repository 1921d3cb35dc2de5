"""The /metrics endpoint (thread server under a trio service) and the event-loop lag monitor."""

from __future__ import annotations

import threading
import time
import urllib.request

import trio

from telemetry.exporter import CONTENT_TYPE, MetricsExporter
from telemetry.looplag import LoopLagMonitor
from telemetry.metrics import NodeMetrics


def _metrics() -> NodeMetrics:
    return NodeMetrics(node_id="node0", chain_id="c", version="0.1.0")


def _get(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


async def test_exporter_serves_metrics_on_loopback_and_stops_on_cancel() -> None:
    """nursery.start returns the port; /metrics serves the registry; cancel closes it."""
    metrics = _metrics()
    metrics.observe_commit(12, 0, 1.0, 100, False)
    exporter = MetricsExporter(metrics, port=0)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(exporter.run)
        content_type, body = await trio.to_thread.run_sync(_get, port)
        assert content_type == CONTENT_TYPE
        assert "bcfl_chain_height 12.0" in body
        nursery.cancel_scope.cancel()
    with trio.socket.socket() as sock:
        try:
            await sock.connect(("127.0.0.1", port))
            connected = True
        except OSError:
            connected = False
    assert not connected


def test_exporter_answers_while_the_event_loop_is_blocked() -> None:
    """A scrape succeeds while the trio loop is stuck in a blocking call."""
    metrics = _metrics()
    answers: list[str] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(MetricsExporter(metrics).run)

            def scrape() -> None:
                answers.append(_get(port)[1])

            thread = threading.Thread(target=scrape)
            thread.start()
            deadline = time.monotonic() + 10
            while thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)  # deliberately blocks the event loop
            thread.join()
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert answers and "bcfl_build_info" in answers[0]


async def test_loop_lag_monitor_records_a_blocked_loop() -> None:
    """Blocking the loop for 0.2 s shows up as >= 0.15 s of lag."""
    metrics = _metrics()
    monitor = LoopLagMonitor(metrics, interval_s=0.02)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        with trio.fail_after(5):
            while monitor.samples < 2:
                await trio.sleep(0.01)
        time.sleep(0.2)  # block the loop on purpose
        with trio.fail_after(5):
            start = monitor.samples
            while monitor.samples == start:
                await trio.sleep(0.005)
        assert monitor.last_lag_s >= 0.15
        nursery.cancel_scope.cancel()
    assert b"bcfl_event_loop_lag_seconds_count" in metrics.render()
