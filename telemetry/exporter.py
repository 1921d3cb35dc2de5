"""The node's Prometheus endpoint: `GET /metrics` on 127.0.0.1:<metrics port>.

Why a thread and not a trio task: the endpoint is served by prometheus_client's
own threaded WSGI server. A scrape then never waits for the event loop, and the
loop never pays for rendering the text format (a few milliseconds for a few
hundred series). That matters exactly when the operator needs the numbers: a
node whose event loop is stuck (a blocking call, a runaway handler) still
answers scrapes, and `bcfl_event_loop_lag_seconds` shows the stall instead of
the target going silently `down`. prometheus_client's metric objects are
thread-safe, so the driver updates them from the loop while the thread reads.

The service still has the house shape (`async def run(self, *, task_status)`,
started with `await nursery.start(...)`, reporting the bound port); cancelling
it shuts the server down. `start()`/`stop()` serve non-trio callers (the
synthetic node, benchmarks).

The server binds 127.0.0.1 unless configured otherwise: Prometheus on the same
host (or a reverse proxy) scrapes it; exposing it to a hospital network is an
explicit operator decision. The node's local HTTP API may serve the same bytes
at `/metrics` via `NodeMetrics.render()` and `CONTENT_TYPE`.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

import trio
from prometheus_client import start_http_server
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from telemetry.metrics import NodeMetrics

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""Content-Type of `NodeMetrics.render()` output (the classic text format 0.0.4)."""


class MetricsExporter:
    """Serves one node's registry at http://host:port/metrics (port 0 picks a free one)."""

    def __init__(self, metrics: NodeMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.bound_port = 0
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Start serving in a daemon thread; return the bound port."""
        if self._server is not None:
            raise RuntimeError("metrics exporter already started")
        server, thread = start_http_server(
            self.port, addr=self.host, registry=self.metrics.registry
        )
        self._server, self._thread = server, thread
        self.bound_port = int(server.server_address[1])
        return self.bound_port

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports the bound port to `nursery.start`."""
        port = await trio.to_thread.run_sync(self.start)
        try:
            task_status.started(port)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.stop)
