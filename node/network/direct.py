"""`/bcfl/direct/1.0.0`: consensus messages sent straight to each peer, no relay.

A consortium is a full mesh: every member dials every other (the bootstrap list is the member
set, and the health loop redials), so a message needs no relay to reach the other members. GossipSub
still relays: each node forwards every message to its mesh peers, so each of the 4n messages
of a height is received D times and sent D times by every node, each copy through protobuf,
Noise and Yamux in Python (docs/ARCHITECTURE.md "Network"). Over direct streams each node
sends its own messages once to each peer and receives each message once, as CometBFT's
reactors send votes; the consensus simulator (consensus/sim/network.py) models exactly
this point-to-point broadcast. What a lost connection drops, the shell's re-sends recover.

One long-lived stream per (sender, receiver), opened by the sender; frames on it::

    kind (1 byte)  length (4 bytes, big-endian)  payload (length bytes)

`kind` is a topic's code (`KIND_OF`) or `BLOB_KIND`, whose payload is a SHA-256 and the blob
it names: a trainer pushes its small update with its receipt (`NodeNetwork.push_blob`), so
the validators need not each open a blob stream to fetch it. The receiver checks every
length against the kind's cap before reading it; a frame of unknown kind or above its cap
is a broken stream, counted and reset (the sender reopens one). Each peer's frames go
through one bounded queue; a full queue drops the frame and counts it.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Callable, Mapping
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from node.network.counters import NetworkCounters
from node.network.framing import FramingError
from node.network.libp2p_compat import send_window_updates_by_halves
from node.network.topics import Topic

logger = logging.getLogger(__name__)

DIRECT_PROTOCOL = TProtocol("/bcfl/direct/1.0.0")
HEADER = struct.Struct(">BI")
KIND_OF: dict[Topic, int] = {topic: code for code, topic in enumerate(Topic, start=1)}
TOPIC_OF: dict[int, Topic] = {code: topic for topic, code in KIND_OF.items()}
BLOB_KIND = 0x80
# Frames a writer coalesces into one stream write (one Noise message, one Yamux frame), and the
# most a reader asks of its stream at once (it parses every whole frame out of what came).
MAX_BATCH_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
MAX_ATTEMPTS = 6  # a writer tries a batch this often (backoff 1, 2, 4, 8, 8 s) before it ends

# (topic, payload, sending peer) -> None; the caller validates, counts and delivers
OnMessage = Callable[[Topic, bytes, ID], None]
# (blob hash, blob bytes, sending peer) -> None
OnBlob = Callable[[bytes, bytes, ID], None]


class DirectMesh:
    """Sends frames to peers over one stream each and reads theirs."""

    def __init__(
        self,
        host: IHost,
        counters: NetworkCounters,
        caps: Mapping[Topic, int],
        *,
        max_blob_push: int,
        queue_size: int,
        timeout_s: float,
        on_message: OnMessage,
        on_blob: OnBlob,
    ) -> None:
        self.host = host
        self.counters = counters
        self.caps = {KIND_OF[topic]: cap for topic, cap in caps.items()}
        self.caps[BLOB_KIND] = 32 + max_blob_push
        self.max_blob_push = max_blob_push
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.on_message = on_message
        self.on_blob = on_blob
        self._queues: dict[ID, trio.MemorySendChannel[bytes]] = {}
        self._inbound: dict[ID, Any] = {}
        self._nursery: trio.Nursery | None = None
        host.set_stream_handler(DIRECT_PROTOCOL, self._read_peer)

    def start(self, nursery: trio.Nursery) -> None:
        """Writers run in `nursery` (the network's own)."""
        self._nursery = nursery

    # -- sending -------------------------------------------------------------------------

    def send(self, topic: Topic, data: bytes, peers: list[ID]) -> int:
        """Queue `data` to each peer; returns how many queues took it."""
        return self._send_frame(HEADER.pack(KIND_OF[topic], len(data)) + data, peers)

    def send_blob(self, blob_hash: bytes, data: bytes, peers: list[ID]) -> int:
        if len(data) > self.max_blob_push:
            raise ValueError(f"a pushed blob is at most {self.max_blob_push} bytes")
        payload = blob_hash + data
        return self._send_frame(HEADER.pack(BLOB_KIND, len(payload)) + payload, peers)

    def _send_frame(self, frame: bytes, peers: list[ID]) -> int:
        queued = 0
        for peer in peers:
            queue = self._queues.get(peer)
            if queue is None:
                queue = self._open_writer(peer)
                if queue is None:
                    continue
            try:
                queue.send_nowait(frame)
                queued += 1
            except trio.WouldBlock:
                self.counters.direct_dropped["queue_full"] += 1
            except trio.ClosedResourceError:
                self.counters.direct_dropped["closed"] += 1
        return queued

    def _open_writer(self, peer: ID) -> trio.MemorySendChannel[bytes] | None:
        if self._nursery is None:
            self.counters.direct_dropped["not_running"] += 1
            return None
        send, receive = trio.open_memory_channel[bytes](self.queue_size)
        self._queues[peer] = send
        self._nursery.start_soon(self._write_peer, peer, send, receive)
        return send

    async def _write_peer(
        self,
        peer: ID,
        send: trio.MemorySendChannel[bytes],
        receive: trio.MemoryReceiveChannel[bytes],
    ) -> None:
        """Own the stream to `peer`: open it, write queued frames in batches.

        A failed open or write (a starved peer answers a stream open in seconds: 32 daemons on
        2 cores took more than 5 s) keeps the batch, resets the stream and tries again after a
        backoff, up to `MAX_ATTEMPTS` times; giving up at the first failure made every later
        frame start over and fail the same way. While the peer is still connected the writer
        stays; once it is gone the writer ends and what is queued is dropped (counted).
        """
        stream = None
        batch: list[bytes] = []
        failures = 0
        try:
            while True:
                if not batch:
                    try:
                        batch = [await receive.receive()]
                    except (trio.EndOfChannel, trio.ClosedResourceError):
                        return
                size = sum(len(f) for f in batch)
                while size < MAX_BATCH_BYTES:
                    try:
                        frame = receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        break
                    batch.append(frame)
                    size += len(frame)
                try:
                    with trio.fail_after(self.timeout_s):
                        if stream is None:
                            stream = await self.host.new_stream(peer, [DIRECT_PROTOCOL])
                        await stream.write(b"".join(batch))
                    batch, failures = [], 0
                except trio.Cancelled:
                    raise
                except Exception as exc:
                    self.counters.stream_errors["direct_write"] += 1
                    logger.debug("direct stream to %s failed: %r", peer, exc)
                    if stream is not None:
                        await _reset_quietly(stream)
                        stream = None
                    failures += 1
                    if failures >= MAX_ATTEMPTS or peer not in self.host.get_connected_peers():
                        self.counters.direct_dropped["stream_error"] += len(batch)
                        return
                    await trio.sleep(min(0.5 * 2**failures, 8.0))
        finally:
            if self._queues.get(peer) is send:
                del self._queues[peer]
            send.close()
            with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                while True:
                    receive.receive_nowait()
                    self.counters.direct_dropped["stream_error"] += 1
            receive.close()
            if stream is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await _reset_quietly(stream)

    def close_peer(self, peer: ID) -> None:
        """Forget the writer to a peer (hung up on, or gone)."""
        queue = self._queues.pop(peer, None)
        if queue is not None:
            queue.close()

    # -- receiving -----------------------------------------------------------------------

    async def _read_peer(self, stream: Any) -> None:
        """Read one peer's frames until its stream ends; a newer stream replaces an older."""
        peer: ID = stream.muxed_conn.peer_id
        send_window_updates_by_halves(stream)  # frames are small: no update every other one
        previous = self._inbound.get(peer)
        self._inbound[peer] = stream
        if previous is not None:
            await _reset_quietly(previous)
        buffer = bytearray()
        started = 0.0  # when the frame at the head of the buffer began to arrive
        try:
            while True:
                # a frame once begun must be complete within timeout_s; an idle link may wait,
                # and a read between frames (nearly every read) needs no cancel scope
                if buffer:
                    with trio.fail_at(started + self.timeout_s):
                        chunk = await _read_chunk(stream)
                else:
                    chunk = await _read_chunk(stream)
                if not chunk:
                    if buffer:
                        raise FramingError(f"stream ended inside a frame ({len(buffer)} bytes)")
                    return
                if not buffer:
                    started = trio.current_time()
                buffer += chunk
                while len(buffer) >= HEADER.size:
                    kind, length = HEADER.unpack_from(buffer)
                    cap = self.caps.get(kind)
                    if cap is None:
                        raise FramingError(f"unknown frame kind {kind}")
                    if length > cap:
                        raise FramingError(f"frame of kind {kind}: {length} bytes, cap {cap}")
                    end = HEADER.size + length
                    if len(buffer) < end:
                        break
                    payload = bytes(buffer[HEADER.size : end])
                    del buffer[:end]
                    started = trio.current_time()
                    self._dispatch(kind, payload, peer)
        except trio.Cancelled:
            raise
        except (FramingError, trio.TooSlowError) as exc:
            # counted with the pubsub's broken frames (telemetry.labels: a closed label set)
            self.counters.rejected[("consensus", "malformed-rpc")] += 1
            logger.info("direct stream from %s broke its framing: %s", peer, exc)
            await _reset_quietly(stream)
        finally:
            if self._inbound.get(peer) is stream:
                del self._inbound[peer]

    def _dispatch(self, kind: int, payload: bytes, peer: ID) -> None:
        if kind == BLOB_KIND:
            if len(payload) < 32:
                raise FramingError("a pushed blob frame is shorter than its hash")
            self.on_blob(payload[:32], payload[32:], peer)
        else:
            self.on_message(TOPIC_OF[kind], payload, peer)


async def _read_chunk(stream: Any) -> bytes:
    """What the stream has (up to READ_CHUNK); b"" once the peer closed or reset it (it
    reopens one)."""
    try:
        return await stream.read(READ_CHUNK)
    except (trio.Cancelled, trio.TooSlowError):
        raise
    except Exception:
        return b""


async def _reset_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await stream.reset()
