"""The local HTTP API: routing, errors, and refusal of malformed requests over a real socket."""

from __future__ import annotations

import json

import trio

from node.httpapi import HttpApi, Response, json_response


async def fetch(port: int, raw: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(raw)
    chunks = []
    while chunk := await stream.receive_some(65536):
        chunks.append(chunk)
    await stream.aclose()
    return b"".join(chunks)


def make_api() -> HttpApi:
    return HttpApi(
        routes={
            "/status": lambda rest: json_response({"height": 3}),
            "/chain": lambda rest: json_response({"rest": rest}),
            "/metrics": lambda rest: Response(200, b"m 1\n", "text/plain"),
        }
    )


async def test_routes_by_longest_prefix_and_passes_the_remainder() -> None:
    """`/chain/7` reaches the `/chain` route with "/7"."""
    api = make_api()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(api.run)
        reply = await fetch(port, b"GET /chain/7 HTTP/1.1\r\nHost: x\r\n\r\n")
        nursery.cancel_scope.cancel()
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body) == {"rest": "/7"}


async def test_unknown_path_is_404_and_garbage_is_400() -> None:
    """A missing route answers 404; a request line that is not HTTP answers 400."""
    api = make_api()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(api.run)
        missing = await fetch(port, b"GET /nope HTTP/1.1\r\n\r\n")
        garbage = await fetch(port, b"\x00\x01garbage\r\n\r\n")
        nursery.cancel_scope.cancel()
    assert missing.startswith(b"HTTP/1.1 404")
    assert garbage.startswith(b"HTTP/1.1 400")


async def test_binds_loopback_by_default() -> None:
    """The default host is 127.0.0.1, never a public interface."""
    assert HttpApi().host == "127.0.0.1"


def test_a_failing_route_answers_500_without_raising() -> None:
    """A bug in one route is contained and reported as a 500."""

    def broken(rest: str) -> Response:
        raise RuntimeError("boom")

    api = HttpApi(routes={"/x": broken})
    assert api.dispatch("GET", "/x").status == 500
    assert api.dispatch("POST", "/x").status == 405
