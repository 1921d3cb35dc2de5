"""The node's local HTTP API: status, the chain as JSON, and Prometheus `/metrics`.

A deliberately small HTTP/1.1 server on trio (GET, and POST with a JSON body
of at most 64 KiB for the operator's governance commands; one request per
connection, request head capped at 8 KiB, 10 s to send it). It binds 127.0.0.1
by default: it is an operator's window into the node, not a public service.
Routes are plain callables so the driver decides what they show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8 * 1024
MAX_REQUEST_BODY = 64 * 1024
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Response:
    """What a route returns."""

    status: int
    body: bytes
    content_type: str = "application/json"


def json_response(value: Any, status: int = 200) -> Response:
    """A JSON body with a trailing newline (friendly to curl)."""
    return Response(status, (json.dumps(value, sort_keys=True) + "\n").encode())


Route = Callable[[str], Response]
"""A route receives the path remainder after its prefix (e.g. "/12" for `/chain/12`)."""
PostRoute = Callable[[str, bytes], Response]
"""A POST route receives the path remainder and the request body."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


@dataclass
class HttpApi:
    """Serves `routes` (longest matching prefix wins) on host:port."""

    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    post_routes: dict[str, PostRoute] = field(default_factory=dict)
    bound_port: int = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; reports the bound port to `nursery.start`."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.bound_port = listeners[0].socket.getsockname()[1]
        task_status.started(self.bound_port)
        await trio.serve_listeners(self._serve_one, listeners)

    def dispatch(self, method: str, path: str, body: bytes = b"") -> Response:
        """Route one request; never raises."""
        if method not in ("GET", "POST"):
            return json_response({"error": "only GET and POST are supported"}, 405)
        path = path.split("?", 1)[0]
        table: dict[str, Any] = self.routes if method == "GET" else self.post_routes
        for prefix in sorted(table, key=len, reverse=True):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                rest = path[len(prefix.rstrip("/")) :]
                try:
                    return table[prefix](rest) if method == "GET" else table[prefix](rest, body)
                except Exception:  # a route bug must not take the API down
                    log.exception("HTTP route %s failed", prefix)
                    return json_response({"error": "internal error"}, 500)
        if method == "POST":
            return json_response({"error": f"{path} takes no POST"}, 405)
        return json_response({"error": f"no such path {path}"}, 404)

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                head = await _read_head(stream)
                if head is None:
                    response = json_response({"error": "malformed or oversized request"}, 400)
                else:
                    response = self.dispatch(*head)
                reason = _REASONS.get(response.status, "OK")
                header = (
                    f"HTTP/1.1 {response.status} {reason}\r\n"
                    f"Content-Type: {response.content_type}\r\n"
                    f"Content-Length: {len(response.body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                await stream.send_all(header + response.body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await stream.aclose()


async def _read_head(stream: trio.SocketStream) -> tuple[str, str, bytes] | None:
    """(method, path, body) of one request, or None when it is malformed or oversized."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_REQUEST_HEAD:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        buffer += chunk
    head, _, body = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/"):
        return None
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return None
    if not 0 <= length <= MAX_REQUEST_BODY:
        return None
    data = bytearray(body)
    while len(data) < length:
        chunk = await stream.receive_some(min(4096, length - len(data)))
        if not chunk:
            return None
        data += chunk
    return parts[0], parts[1], bytes(data[:length])
