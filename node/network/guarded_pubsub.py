"""A py-libp2p 0.8.1 `Pubsub` with the fixes NOTES-libp2p.md asks for.

1. **Malformed RPC frames.** `continuously_read_stream` parses each inbound frame with
   protobuf; a frame that is not a valid RPC raises `DecodeError`, which the stock
   `stream_handler` does not catch, so one peer can kill the whole process. We catch every
   exception at that point, reset the stream, count the frame against the peer, and after
   `malformed_strikes` frames put the peer on the pubsub blacklist for
   `malformed_cooldown_s` seconds (its connection is torn down; the health loop of
   `NodeNetwork` lifts the ban when it expires, so a restarted honest peer comes back).
2. **Interleaved writes.** Yamux locks each frame, not each write; the sending loop,
   gossipsub's flush/replay paths and the hello write may write to one stream concurrently
   and interleave frames of two RPCs. `write_msg` takes a per-stream lock around the whole
   write.
3. **Small queues and colliding seqnos.** The outbound RPC queue per peer is raised from 32
   to `outbound_queue_size`, and the seqno counter starts at `time.time_ns()` so a quickly
   restarted node never reuses message ids.
4. **Blacklist teardown race.** The stock `_teardown_if_connected` deletes the peer after an
   await and dies with KeyError if the dead-peer path got there first; ours pops safely.
5. **Sender records verified on every RPC.** Each inbound RPC carries the sender's signed
   peer record, and the stock code verifies its Ed25519 envelope every time (about 5% of a
   devnet node's CPU). `remember_sender_records` makes pubsub verify a given record from a
   given peer once per `SENDER_RECORD_TTL_S`; a new or changed record is verified as before.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pubsub import Pubsub

logger = logging.getLogger(__name__)

SENDER_RECORD_TTL_S = 600.0
_SENDER_RECORDS_MAX = 4096


def remember_sender_records() -> None:
    """Install the once-per-record check of RPC sender records in pubsub and gossipsub."""
    from libp2p.pubsub import gossipsub, pubsub, utils

    verify = utils.maybe_consume_signed_record
    if getattr(pubsub.maybe_consume_signed_record, "_bcfl_cached", False):
        return
    checked: dict[tuple[bytes, bytes], float] = {}

    def consume_once(msg: Any, host: Any, peer_id: Any) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        key = (peer_id.to_bytes(), msg.senderRecord)
        now = time.monotonic()
        if now - checked.get(key, -SENDER_RECORD_TTL_S) < SENDER_RECORD_TTL_S:
            return True
        ok = bool(verify(msg, host, peer_id))
        if ok:
            if len(checked) >= _SENDER_RECORDS_MAX:
                checked.clear()
            checked[key] = now
        return ok

    consume_once._bcfl_cached = True  # type: ignore[attr-defined]
    pubsub.maybe_consume_signed_record = consume_once  # type: ignore[assignment]
    gossipsub.maybe_consume_signed_record = consume_once  # type: ignore[assignment]


class _SizedQueues(dict):  # type: ignore[type-arg]
    """`peer_queues` that widens each new queue as pubsub inserts it (before any push)."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size

    def __setitem__(self, key: Any, queue: Any) -> None:
        inner = getattr(queue, "_queue", None)
        if inner is not None and hasattr(inner, "max_size"):
            inner.max_size = self.max_size
        super().__setitem__(key, queue)


class GuardedPubsub(Pubsub):
    """Pubsub that survives malformed frames and never interleaves two RPC writes."""

    def __init__(
        self,
        *args: Any,
        outbound_queue_size: int = 1024,
        malformed_strikes: int = 3,
        malformed_cooldown_s: float = 30.0,
        on_malformed: Callable[[ID, BaseException], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        remember_sender_records()
        self.counter = time.time_ns()
        self.peer_queues = _SizedQueues(outbound_queue_size)
        self._write_locks: weakref.WeakKeyDictionary[Any, trio.Lock] = weakref.WeakKeyDictionary()
        self._strikes: dict[ID, int] = {}
        self._banned_until: dict[ID, float] = {}
        self.malformed_strikes = malformed_strikes
        self.malformed_cooldown_s = malformed_cooldown_s
        self._on_malformed = on_malformed

    async def stream_handler(self, stream: Any) -> None:
        peer_id = stream.muxed_conn.peer_id
        try:
            await super().stream_handler(stream)
        except trio.Cancelled:
            raise
        except Exception as exc:  # DecodeError and anything else a peer can provoke
            self._penalise(peer_id, exc)
            with contextlib.suppress(Exception):
                await stream.reset()
            self._handle_dead_peer(peer_id)

    def _penalise(self, peer_id: ID, exc: BaseException) -> None:
        logger.warning("dropping malformed pubsub frame from %s: %r", peer_id, exc)
        if self._on_malformed is not None:
            self._on_malformed(peer_id, exc)
        strikes = self._strikes.get(peer_id, 0) + 1
        self._strikes[peer_id] = strikes
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None:
            for topic in list(self.topic_ids):
                with contextlib.suppress(Exception):
                    scorer.on_invalid_message(peer_id, topic)
        if strikes >= self.malformed_strikes and self.manager.is_running:
            self._strikes.pop(peer_id, None)
            self._banned_until[peer_id] = time.monotonic() + self.malformed_cooldown_s
            self.add_to_blacklist(peer_id)

    async def _teardown_if_connected(self, peer_id: ID) -> None:
        # The stock version does `del self.peers[peer_id]` after an await, and raises KeyError
        # (killing the pubsub service) when the dead-peer path removed the peer meanwhile.
        stream = self.peers.pop(peer_id, None)
        if stream is not None:
            queue = self.peer_queues.pop(peer_id, None)
            if queue is not None:
                queue.close()
            with contextlib.suppress(Exception):
                self.router.remove_peer(peer_id)
            with contextlib.suppress(Exception):
                await stream.reset()
        self._forget_all_subscriptions(peer_id)

    def lift_expired_bans(self, now: float | None = None) -> list[ID]:
        """Remove peers whose malformed-frame ban has expired; returns them."""
        now = time.monotonic() if now is None else now
        lifted = [peer for peer, until in self._banned_until.items() if until <= now]
        for peer in lifted:
            del self._banned_until[peer]
            self.remove_from_blacklist(peer)
        return lifted

    def is_banned(self, peer_id: ID) -> bool:
        return peer_id in self._banned_until

    async def write_msg(self, stream: Any, rpc_msg: Any) -> bool:
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            return await super().write_msg(stream, rpc_msg)
