"""The devnet's WAN link proxy delays, retransmits "lost" chunks late, and keeps byte order."""

from __future__ import annotations

import random

import pytest
import trio

from devnet.launcher import free_ports
from devnet.linkproxy import Link, parse_duration_ms, parse_percent, serve


def test_parses_the_cli_forms() -> None:
    """40ms, 0.04s and 40 are the same delay; 1% and 0.01 the same loss; nonsense is refused."""
    assert parse_duration_ms("40ms") == parse_duration_ms("0.04s") == parse_duration_ms("40")
    assert parse_percent("1%") == parse_percent("0.01") == 0.01
    with pytest.raises(ValueError):
        parse_percent("100%")
    with pytest.raises(ValueError):
        parse_duration_ms("fast")


def test_a_lost_chunk_holds_back_the_ones_after_it() -> None:
    """A lost chunk comes one RTO late and later chunks wait behind it (TCP's in-order delivery)."""

    class FifthLost(random.Random):
        calls = 0

        def random(self) -> float:
            self.calls += 1
            return 0.0 if self.calls == 5 else 0.99

    link = Link(delay_ms=40.0, loss=0.01, rng=FifthLost())
    dues = [link.due(now=i * 0.001) for i in range(10)]
    assert dues[:4] == pytest.approx([0.02 + i * 0.001 for i in range(4)])  # half the RTT
    assert dues[4] == pytest.approx(0.024 + 0.2)  # one RTO (200 ms minimum) late
    assert dues[5:] == [dues[4]] * 5  # the later chunks wait behind the lost one


async def test_round_trip_through_the_proxy_takes_the_link_delay() -> None:
    """An echo through a 100 ms link takes >= 100 ms and returns every byte in order."""
    listen, target = free_ports(2)

    async def echo(stream: trio.SocketStream) -> None:
        async for data in stream:
            await stream.send_all(data)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_tcp, echo, target)
        nursery.start_soon(serve, {"delay_ms": 100.0, "loss": 0.0, "links": [[listen, target]]})
        client = await _connect_when_listening(listen)
        payload = bytes(range(256)) * 64
        started = trio.current_time()
        await client.send_all(payload)
        received = b""
        while len(received) < len(payload):
            received += await client.receive_some(65536)
        assert received == payload
        assert trio.current_time() - started >= 0.1
        await client.aclose()
        nursery.cancel_scope.cancel()


async def _connect_when_listening(port: int) -> trio.SocketStream:
    with trio.fail_after(10):
        while True:
            try:
                return await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.01)  # polling for the listener, not synchronising on time
