"""Blob exchange over in-memory streams: streaming into the store, busy retry, per-peer deadlines."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from node.blobs import BlobStore
from node.network.blob_exchange import (
    FOUND,
    HEADER,
    STREAM_PIECE,
    BlobExchange,
    BlobUnavailableError,
)
from node.network.counters import NetworkCounters

Handler = Callable[[Any], Awaitable[None]]


class FakeStream:
    """One end of an in-memory pair with the py-libp2p stream calls the exchange uses."""

    def __init__(self, inner: trio.testing.StapledStream) -> None:  # type: ignore[type-arg]
        self.inner = inner

    async def read(self, n: int | None = -1) -> bytes:
        try:
            return bytes(await self.inner.receive_some(n if n and n > 0 else None))
        except trio.ClosedResourceError:
            return b""

    async def write(self, data: bytes) -> None:
        await self.inner.send_all(data)

    async def close(self) -> None:
        await self.inner.send_stream.aclose()

    async def reset(self) -> None:
        await self.inner.aclose()


class FakeHost:
    """Routes `new_stream(peer)` to the handler that peer registered."""

    pair = staticmethod(trio.testing.memory_stream_pair)  # buffers whatever the writer sends

    def __init__(self, nursery: trio.Nursery, directory: dict[str, FakeHost]) -> None:
        self.nursery = nursery
        self.directory = directory
        self.handler: Handler | None = None

    def set_stream_handler(self, protocol: str, handler: Handler) -> None:
        self.handler = handler

    async def new_stream(self, peer_id: str, protocols: list[str]) -> FakeStream:
        server = self.directory[peer_id].handler
        assert server is not None
        mine, theirs = self.pair()
        self.nursery.start_soon(server, FakeStream(theirs))
        return FakeStream(mine)


def _exchange(
    nursery: trio.Nursery, directory: dict[str, FakeHost], name: str, root: Path, **kw: Any
) -> BlobExchange:
    host = directory[name] = FakeHost(nursery, directory)
    return BlobExchange(host, BlobStore(root / name), NetworkCounters(), **kw)  # type: ignore[arg-type]


BLOB = os.urandom(3 * (4 << 20) + 12345)  # several pieces and a partial one
BLOB_ID = hashlib.sha256(BLOB).digest()


async def test_a_blob_streams_into_the_store(tmp_path: Path) -> None:
    """A fetched blob is stored under its hash, with nothing left in the incoming folder."""
    async with trio.open_nursery() as nursery:
        directory: dict[str, FakeHost] = {}
        server = _exchange(nursery, directory, "server", tmp_path)
        me = _exchange(nursery, directory, "me", tmp_path)
        server.blobs.put(BLOB)
        await me.fetch_to_store(BLOB_ID, ["server"])  # type: ignore[list-item]
        assert me.blobs.get(BLOB_ID) == BLOB
        assert list((me.blobs.root / ".incoming").iterdir()) == []
        assert me.counters.blob_bytes_in == len(BLOB)
        nursery.cancel_scope.cancel()


async def test_a_transfer_holds_a_few_pieces_not_the_blob(tmp_path: Path) -> None:
    """Serving and fetching a 12 MiB blob in one process holds about four 1 MiB pieces (the
    served piece, the stream's buffer, the fetched piece and its parts), not 4 MiB pieces."""
    async with trio.open_nursery() as nursery:
        directory: dict[str, FakeHost] = {}
        server = _exchange(nursery, directory, "server", tmp_path)
        me = _exchange(nursery, directory, "me", tmp_path)
        # a write returns once the reader took it, as a muxer's window bounds what is in flight
        directory["server"].pair = directory["me"].pair = trio.testing.lockstep_stream_pair
        server.blobs.put(BLOB)
        tracemalloc.start()
        try:
            await me.fetch_to_store(BLOB_ID, ["server"])  # type: ignore[list-item]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert me.blobs.verify(BLOB_ID)
        assert peak < 5 * STREAM_PIECE < len(BLOB) / 2, peak
        nursery.cancel_scope.cancel()


async def test_concurrent_fetches_of_one_blob_share_one_transfer(tmp_path: Path) -> None:
    """Three tasks fetching one blob at once cost one transfer and all succeed."""
    async with trio.open_nursery() as nursery:
        directory: dict[str, FakeHost] = {}
        server = _exchange(nursery, directory, "server", tmp_path)
        me = _exchange(nursery, directory, "me", tmp_path)
        server.blobs.put(BLOB)
        async with trio.open_nursery() as fetchers:
            for _ in range(3):
                fetchers.start_soon(me.fetch_to_store, BLOB_ID, ["server"])
        assert me.counters.blob_fetches["ok"] == 1
        assert server.counters.blob_serves["ok"] == 1
        nursery.cancel_scope.cancel()


async def test_a_busy_server_is_retried_with_backoff(tmp_path: Path) -> None:
    """A fetch that meets a busy server retries it and succeeds once a slot frees up."""
    async with trio.open_nursery() as nursery:
        directory: dict[str, FakeHost] = {}
        server = _exchange(nursery, directory, "server", tmp_path, max_concurrent_serves=1)
        me = _exchange(nursery, directory, "me", tmp_path, busy_backoff_s=0.05)
        server.blobs.put(BLOB)
        server._serve_slots.acquire_nowait()  # another requester holds the only slot
        done = trio.Event()

        async def fetch() -> None:
            await me.fetch_to_store(BLOB_ID, ["server"])  # type: ignore[list-item]
            done.set()

        nursery.start_soon(fetch)
        with trio.fail_after(10):
            while server.counters.blob_serves["busy"] < 1:
                await trio.sleep(0.001)  # wait for the condition: the first answer was busy
        assert not done.is_set()
        server._serve_slots.release()
        with trio.fail_after(10):
            await done.wait()
        assert me.counters.blob_fetches["busy"] >= 1
        assert me.counters.blob_fetches["ok"] == 1
        assert me.blobs.get(BLOB_ID) == BLOB
        nursery.cancel_scope.cancel()


async def test_a_server_that_stays_busy_fails_after_the_retries(tmp_path: Path) -> None:
    """Busy every time: the fetch gives up after 1 + busy_retries attempts, naming busy."""
    async with trio.open_nursery() as nursery:
        directory: dict[str, FakeHost] = {}
        server = _exchange(nursery, directory, "server", tmp_path, max_concurrent_serves=0)
        me = _exchange(nursery, directory, "me", tmp_path, busy_backoff_s=0.001, busy_retries=3)
        server.blobs.put(BLOB)
        with pytest.raises(BlobUnavailableError, match="busy"):
            await me.fetch_to_store(BLOB_ID, ["server"])  # type: ignore[list-item]
        assert me.counters.blob_fetches["busy"] == 4
        assert not me.blobs.has(BLOB_ID)
        nursery.cancel_scope.cancel()


async def test_a_stalling_peer_costs_its_own_deadline_then_the_next_peer_serves(
    tmp_path: Path,
) -> None:
    """A peer that announces a small blob and stalls times out on its own short deadline; the
    next peer delivers 12 MB under a deadline that grew with that size."""
    async with trio.open_nursery() as nursery:
        directory: dict[str, FakeHost] = {}
        staller = directory["staller"] = FakeHost(nursery, directory)

        async def stall(stream: FakeStream) -> None:
            await stream.read(32)
            await stream.write(HEADER.pack(FOUND, 2000))  # a small blob: a short deadline
            await stream.write(BLOB[:1000])
            await trio.sleep_forever()

        staller.set_stream_handler("/bcfl/blob/1.0.0", stall)
        honest = _exchange(nursery, directory, "honest", tmp_path)
        honest.blobs.put(BLOB)
        me = _exchange(nursery, directory, "me", tmp_path, timeout_s=0.5, min_rate_bytes_per_s=1e6)
        with trio.fail_after(10):
            await me.fetch_to_store(BLOB_ID, ["staller", "honest"])  # type: ignore[list-item]
        assert me.counters.blob_fetches["error"] == 1
        assert me.counters.blob_fetches["ok"] == 1
        assert list((me.blobs.root / ".incoming").iterdir()) == []
        nursery.cancel_scope.cancel()


def test_the_payload_deadline_grows_with_the_blob_size(tmp_path: Path) -> None:
    """A 45 MB blob gets its transfer time at the minimum rate on top of the base timeout."""
    exchange = BlobExchange(
        FakeHost(None, {}),  # type: ignore[arg-type]
        BlobStore(tmp_path),
        NetworkCounters(),
        timeout_s=10.0,
        min_rate_bytes_per_s=5e6,
    )
    assert exchange._deadline_for(0) == 10.0
    assert exchange._deadline_for(45_000_000) == pytest.approx(19.0)
