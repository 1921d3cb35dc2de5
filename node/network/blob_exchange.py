"""`/bcfl/blob/1.0.0`: fetch a content-addressed blob (model or update) by its SHA-256.

Wire format (all integers big-endian)::

    request : hash (32 bytes)                      then the requester closes its write side
    response: status (1 byte) length (8 bytes)     status 0 = found, 1 = not found, 2 = busy
              payload (length bytes)               only when status is 0

The requester checks the announced length against `max_blob_bytes` before reading, reads
under a deadline that grows with the size (`timeout_s + length / min_rate`), verifies the
SHA-256, and only then stores the blob. A server serves at most `max_concurrent_serves`
uploads at once and answers "busy" beyond that, so a burst of requests cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import struct
import time
from collections.abc import Sequence
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from node.blobs import BlobStore
from node.network.counters import NetworkCounters
from node.network.framing import FramingError, check_length, read_exactly, read_struct, write_all

logger = logging.getLogger(__name__)

BLOB_PROTOCOL = TProtocol("/bcfl/blob/1.0.0")
HEADER = struct.Struct(">BQ")
FOUND, NOT_FOUND, BUSY = 0, 1, 2


class BlobUnavailableError(Exception):
    """No peer delivered the blob with the right hash (each peer's failure is in the message)."""


class BlobExchange:
    """Serves blobs from a `BlobStore` and fetches missing ones from peers."""

    def __init__(
        self,
        host: IHost,
        blobs: BlobStore,
        counters: NetworkCounters,
        *,
        max_blob_bytes: int = 512 * 1024 * 1024,
        timeout_s: float = 10.0,
        min_rate_bytes_per_s: float = 5e6,
        max_concurrent_serves: int = 8,
    ) -> None:
        self.host = host
        self.blobs = blobs
        self.counters = counters
        self.max_blob_bytes = max_blob_bytes
        self.timeout_s = timeout_s
        self.min_rate = min_rate_bytes_per_s
        self._serve_slots = trio.Semaphore(max_concurrent_serves)
        self._in_flight: dict[bytes, trio.Event] = {}
        host.set_stream_handler(BLOB_PROTOCOL, self._serve)

    def _deadline_for(self, length: int) -> float:
        return self.timeout_s + length / self.min_rate

    async def _serve(self, stream: Any) -> None:
        try:
            with trio.fail_after(self.timeout_s):
                blob_hash = await read_exactly(stream, 32)
            try:
                self._serve_slots.acquire_nowait()
            except trio.WouldBlock:
                self.counters.blob_serves["busy"] += 1
                await stream.write(HEADER.pack(BUSY, 0))
                await stream.close()
                return
            try:
                try:
                    data = await trio.to_thread.run_sync(self.blobs.get, blob_hash)
                except (KeyError, Exception):  # absent or corrupt on our disk
                    self.counters.blob_serves["not_found"] += 1
                    await stream.write(HEADER.pack(NOT_FOUND, 0))
                    await stream.close()
                    return
                with trio.fail_after(self._deadline_for(len(data))):
                    await stream.write(HEADER.pack(FOUND, len(data)))
                    await write_all(stream, data)
                    await stream.close()
                self.counters.blob_serves["ok"] += 1
                self.counters.blob_bytes_out += len(data)
            finally:
                self._serve_slots.release()
        except trio.Cancelled:
            raise
        except Exception as exc:  # a slow, lying or vanished peer: its fault, drop the stream
            self.counters.stream_errors["blob_serve"] += 1
            logger.debug("blob serve failed: %r", exc)
            await _reset_quietly(stream)

    async def fetch_from(self, peer_id: ID, blob_hash: bytes) -> bytes:
        """Fetch one blob from one peer and verify its hash; raises on any failure."""
        with trio.fail_after(self.timeout_s):
            stream = await self.host.new_stream(peer_id, [BLOB_PROTOCOL])
        try:
            with trio.fail_after(self.timeout_s):
                await stream.write(blob_hash)
                await stream.close()  # half-close: the request is complete
                status, length = await read_struct(stream, HEADER)
            if status == NOT_FOUND:
                raise KeyError(f"peer {peer_id} does not have blob {blob_hash.hex()[:16]}")
            if status == BUSY:
                raise FramingError(f"peer {peer_id} is busy")
            if status != FOUND:
                raise FramingError(f"peer {peer_id} sent unknown status {status}")
            check_length("blob", length, self.max_blob_bytes)
            with trio.fail_after(self._deadline_for(length)):
                data = await read_exactly(stream, length)
        except BaseException:
            await _reset_quietly(stream)
            raise
        digest = await trio.to_thread.run_sync(lambda: hashlib.sha256(data).digest())
        if digest != blob_hash:
            raise FramingError(f"peer {peer_id} sent bytes that do not hash to the blob id")
        return data

    async def fetch(self, blob_hash: bytes, from_peers: Sequence[ID]) -> bytes:
        """Return the blob, from the local store or the first peer that delivers it.

        The verified blob is stored before it is returned. Concurrent fetches of one blob
        share a single transfer.
        """
        if len(blob_hash) != 32:
            raise ValueError("a blob id is 32 bytes")
        while blob_hash in self._in_flight:
            await self._in_flight[blob_hash].wait()
        if self.blobs.has(blob_hash):
            try:
                return await trio.to_thread.run_sync(self.blobs.get, blob_hash)
            except Exception:
                pass  # corrupt on disk: moved aside by get(); fetch it again
        done = self._in_flight[blob_hash] = trio.Event()
        try:
            failures = []
            for peer_id in from_peers:
                started = time.perf_counter()
                try:
                    data = await self.fetch_from(peer_id, blob_hash)
                except trio.Cancelled:
                    raise
                except KeyError as exc:
                    self.counters.blob_fetches["not_found"] += 1
                    failures.append(f"{peer_id}: {exc.args[0]}")
                    continue
                except Exception as exc:
                    self.counters.blob_fetches["error"] += 1
                    failures.append(f"{peer_id}: {exc!r}")
                    continue
                self.counters.blob_fetches["ok"] += 1
                self.counters.blob_bytes_in += len(data)
                self.counters.blob_fetch_seconds.append(time.perf_counter() - started)
                await trio.to_thread.run_sync(
                    lambda d=data: self.blobs.put(d, expected_hash=blob_hash)
                )
                return data
            raise BlobUnavailableError(
                f"blob {blob_hash.hex()[:16]} unavailable: " + ("; ".join(failures) or "no peers")
            )
        finally:
            del self._in_flight[blob_hash]
            done.set()


async def _reset_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await stream.reset()
