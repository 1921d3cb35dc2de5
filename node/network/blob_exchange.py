"""`/bcfl/blob/1.0.0`: fetch a content-addressed blob (model or update) by its SHA-256.

Wire format (all integers big-endian)::

    request : hash (32 bytes)                      then the requester closes its write side
    response: status (1 byte) length (8 bytes)     status 0 = found, 1 = not found, 2 = busy
              payload (length bytes)               only when status is 0

The requester checks the announced length against `max_blob_bytes` before reading, reads
under a deadline of its own per peer that grows with the size (`timeout_s + length /
min_rate`), and streams the payload into a temporary file of the store while hashing it; the
blob takes its name only when the SHA-256 matches. The server streams from its file too, so
neither side holds a whole blob in memory. A server serves at most `max_concurrent_serves`
uploads at once and answers "busy" beyond that; a requester tries its other peers first and
then retries the busy ones with exponential backoff (`busy_retries` rounds, from
`busy_backoff_s`), so a popular blob (every validator fetching the proposer's update at
once) does not fail a height.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from node.blobs import BlobStore, verify_blob
from node.network.counters import NetworkCounters
from node.network.framing import FramingError, check_length, read_exactly, read_struct

logger = logging.getLogger(__name__)

BLOB_PROTOCOL = TProtocol("/bcfl/blob/1.0.0")
# Bytes read from the file (serve) or from the stream (fetch) and handed to a worker thread at
# a time. Each transfer holds about two of them (the piece and its parts), so 8 serves and 3
# fetches at once hold ~22 MiB, not the ~90 MiB of 4 MiB pieces; the blob throughput is set by
# Noise and Yamux, not by the piece size (docs/ARCHITECTURE.md "Memory").
STREAM_PIECE = 1 << 20
HEADER = struct.Struct(">BQ")
FOUND, NOT_FOUND, BUSY = 0, 1, 2


class BlobUnavailableError(Exception):
    """No peer delivered the blob with the right hash (each peer's failure is in the message)."""


class PeerBusyError(Exception):
    """The peer is serving as many blobs as it allows; ask again later."""


class PushedBlobs:
    """Small blobs peers pushed to us (direct.py), held in memory until a fetch asks for one.

    Bounded in bytes (oldest out first), and only blobs whose bytes hash to their name enter:
    a peer can push junk, but it costs it rate-limited frames and us bounded memory, never a
    disk write.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0

    def offer(self, blob_hash: bytes, data: bytes) -> str:
        """Keep the blob if it is what it claims to be: "ok", "duplicate" or "bad-hash"."""
        if blob_hash in self._blobs:
            return "duplicate"
        if hashlib.sha256(data).digest() != blob_hash:
            return "bad-hash"
        self._blobs[blob_hash] = data
        self._bytes += len(data)
        while self._bytes > self.max_bytes:
            _, old = self._blobs.popitem(last=False)
            self._bytes -= len(old)
        return "ok"

    def pop(self, blob_hash: bytes) -> bytes | None:
        data = self._blobs.pop(blob_hash, None)
        if data is not None:
            self._bytes -= len(data)
        return data


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
        busy_retries: int = 5,
        busy_backoff_s: float = 0.25,
        pushed_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.blobs = blobs
        self.counters = counters
        self.max_blob_bytes = max_blob_bytes
        self.timeout_s = timeout_s
        self.min_rate = min_rate_bytes_per_s
        self.busy_retries = busy_retries
        self.busy_backoff_s = busy_backoff_s
        self._serve_slots = trio.Semaphore(max_concurrent_serves)
        self._in_flight: dict[bytes, trio.Event] = {}
        self.pushed = PushedBlobs(pushed_bytes)
        host.set_stream_handler(BLOB_PROTOCOL, self._serve)

    def store_pushed(self, blob_hash: bytes) -> bytes | None:
        """Move a blob a peer pushed to us into the store and return its bytes; None when none
        was pushed.

        Inline on the event loop and without fsync: it is small (`PushedBlobs`), its hash was
        checked when it arrived (put() checks again), and peers hold it too. Creating the file
        waits for the file system's journal when other processes fsync: in an 8-node devnet on
        one disk a put took 1 ms at the median and 9 ms at p90 (about 20 ms a height).
        """
        pushed = self.pushed.pop(blob_hash)
        if pushed is None:
            return None
        self.blobs.put(pushed, expected_hash=blob_hash, durable=False)
        self.counters.blob_pushes["used"] += 1
        return pushed

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
                size = self.blobs.size(blob_hash) if len(blob_hash) == 32 else None
                if size is None:
                    self.counters.blob_serves["not_found"] += 1
                    await stream.write(HEADER.pack(NOT_FOUND, 0))
                    await stream.close()
                    return
                # streamed from the file; the requester checks the hash (a blob damaged on
                # our disk fails there, and our own next read of it moves it aside)
                with trio.fail_after(self._deadline_for(size)):
                    await stream.write(HEADER.pack(FOUND, size))
                    for offset in range(0, size, STREAM_PIECE):
                        want = min(STREAM_PIECE, size - offset)
                        piece = await trio.to_thread.run_sync(
                            self.blobs.read_piece, blob_hash, offset, want
                        )
                        if len(piece) != want:
                            raise FramingError("the blob file shrank while it was served")
                        await stream.write(piece)
                    await stream.close()
                self.counters.blob_serves["ok"] += 1
                self.counters.blob_bytes_out += size
            finally:
                self._serve_slots.release()
        except trio.Cancelled:
            raise
        except Exception as exc:  # a slow, lying or vanished peer: its fault, drop the stream
            self.counters.stream_errors["blob_serve"] += 1
            logger.debug("blob serve failed: %r", exc)
            await _reset_quietly(stream)

    async def fetch_from(self, peer_id: ID, blob_hash: bytes) -> int:
        """Fetch one blob from one peer into the store, verified; returns its size.

        The deadline is this peer's own: `timeout_s` to connect and to get the header, then
        `timeout_s + length / min_rate` for the payload. Raises `KeyError` (the peer does not
        have it), `PeerBusyError`, or another exception for any other failure.
        """
        with trio.fail_after(self.timeout_s):
            stream = await self.host.new_stream(peer_id, [BLOB_PROTOCOL])
        incoming = None
        try:
            with trio.fail_after(self.timeout_s):
                await stream.write(blob_hash)
                await stream.close()  # half-close: the request is complete
                status, length = await read_struct(stream, HEADER)
            if status == NOT_FOUND:
                raise KeyError(f"peer {peer_id} does not have blob {blob_hash.hex()[:16]}")
            if status == BUSY:
                raise PeerBusyError(f"peer {peer_id} is busy")
            if status != FOUND:
                raise FramingError(f"peer {peer_id} sent unknown status {status}")
            check_length("blob", length, self.max_blob_bytes)
            incoming = await trio.to_thread.run_sync(self.blobs.incoming, blob_hash, length)
            with trio.fail_after(self._deadline_for(length)):
                for offset in range(0, length, STREAM_PIECE):
                    piece = await read_exactly(stream, min(STREAM_PIECE, length - offset))
                    await trio.to_thread.run_sync(incoming.write, piece)
            try:
                await trio.to_thread.run_sync(incoming.commit)
            except Exception as exc:
                raise FramingError(f"peer {peer_id} sent bad bytes: {exc}") from None
            incoming = None
        except BaseException:
            if incoming is not None:
                incoming.discard()
            await _reset_quietly(stream)
            raise
        return int(length)

    async def fetch(self, blob_hash: bytes, from_peers: Sequence[ID]) -> bytes:
        """Return the blob, from the local store or the first peer that delivers it.

        The verified blob is stored before it is returned. Concurrent fetches of one blob
        share a single transfer. For a large blob prefer `fetch_to_store`, which does not
        read it into memory.
        """
        pushed = await self.fetch_to_store(blob_hash, from_peers)
        if pushed is not None:
            return pushed
        return await trio.to_thread.run_sync(self.blobs.get, blob_hash)

    async def fetch_to_store(self, blob_hash: bytes, from_peers: Sequence[ID]) -> bytes | None:
        """Make sure a verified copy of the blob is in the local store (fetched if needed).

        Returns the bytes when they came from a push (small, already in memory and verified),
        so the caller need not read the file back; None otherwise. Peers are tried in order;
        a busy one is retried after the others, with a backoff that doubles each round.
        Raises `BlobUnavailableError` naming each peer's failure.
        """
        if len(blob_hash) != 32:
            raise ValueError("a blob id is 32 bytes")
        while blob_hash in self._in_flight:
            await self._in_flight[blob_hash].wait()
        # claimed before the first await, so a concurrent fetch of this blob waits for us
        done = self._in_flight[blob_hash] = trio.Event()
        try:
            if await verify_blob(self.blobs, blob_hash):
                return None  # a damaged copy was moved aside by verify(): fetch it again
            pushed = self.store_pushed(blob_hash)
            if pushed is not None:
                return pushed
            failures: list[str] = []
            queue = list(from_peers)
            for attempt in range(self.busy_retries + 1):
                if attempt:
                    await trio.sleep(self.busy_backoff_s * 2 ** (attempt - 1))  # a backoff
                busy = []
                for peer_id in queue:
                    if await self._try_peer(peer_id, blob_hash, failures, busy):
                        return None
                if not busy:
                    break
                queue = busy
            raise BlobUnavailableError(
                f"blob {blob_hash.hex()[:16]} unavailable: " + ("; ".join(failures) or "no peers")
            )
        finally:
            del self._in_flight[blob_hash]
            done.set()

    async def _try_peer(
        self, peer_id: ID, blob_hash: bytes, failures: list[str], busy: list[ID]
    ) -> bool:
        started = time.perf_counter()
        try:
            length = await self.fetch_from(peer_id, blob_hash)
        except trio.Cancelled:
            raise
        except KeyError as exc:
            self.counters.blob_fetches["not_found"] += 1
            failures.append(f"{peer_id}: {exc.args[0]}")
            return False
        except PeerBusyError as exc:
            self.counters.blob_fetches["busy"] += 1
            failures.append(f"{peer_id}: {exc}")
            busy.append(peer_id)
            return False
        except Exception as exc:
            self.counters.blob_fetches["error"] += 1
            failures.append(f"{peer_id}: {exc!r}")
            return False
        self.counters.blob_fetches["ok"] += 1
        self.counters.blob_bytes_in += length
        self.counters.blob_fetch_seconds.append(time.perf_counter() - started)
        return True


async def _reset_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await stream.reset()
