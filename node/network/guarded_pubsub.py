"""The node's pubsub: `CompatPubsub` plus three guards against what a peer can do to it.

py-libp2p 0.8.1 pitfalls these guards answer (docs/libp2p-compat.md); the fixes that touch
the library's internals (queue bounds, seqno start, teardown race, sender records) are in
`node.network.libp2p_compat.CompatPubsub`, this module overrides public methods only:

1. **Malformed RPC frames.** `continuously_read_stream` parses each inbound frame with
   protobuf; a frame that is not a valid RPC raises `DecodeError`, which the stock
   `stream_handler` does not catch, so one peer can kill the whole process. We catch every
   exception at that point, reset the stream, count the frame against the peer, and after
   `malformed_strikes` frames put the peer on the pubsub blacklist for
   `malformed_cooldown_s` seconds (its connection is torn down; the health loop of
   `NodeNetwork` lifts the ban when it expires, so a restarted honest peer comes back).
2. **Messages whose signature check raises.** The stock `push_msg` runs in a task of the
   pubsub service, and `signature_validator` re-raises when the attached public key cannot
   be parsed (an RSA or secp256k1 `key` with garbage bytes, or any such key once
   node/libp2p_extras.py stands in their packages): the task's error stops the whole pubsub
   service, so one member could silence a node. We catch it, drop that message, and count it
   against the forwarder like a malformed frame (an honest forwarder drops it too and never
   relays it).
3. **Interleaved writes.** Yamux locks each frame, not each write; the sending loop and
   gossipsub's flush/replay paths may write to one stream concurrently and interleave frames
   of two RPCs. `write_msg` takes a per-stream lock around the whole write.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from node.network import libp2p_compat
from node.network.libp2p_compat import CompatPubsub

logger = logging.getLogger(__name__)


class GuardedPubsub(CompatPubsub):
    """Pubsub that survives malformed frames and never interleaves two RPC writes."""

    def __init__(
        self,
        host: IHost,
        router: Any,
        *,
        outbound_queue_size: int = 1024,
        malformed_strikes: int = 3,
        malformed_cooldown_s: float = 30.0,
        on_malformed: Callable[[ID, BaseException], None] | None = None,
        **kwargs: Any,
    ) -> None:
        libp2p_compat.require(
            libp2p_compat.STREAM_HANDLER,
            libp2p_compat.WRITE_MSG,
            libp2p_compat.HANDLE_DEAD_PEER,
            libp2p_compat.GOSSIPSUB_SCORER,
            libp2p_compat.ON_INVALID_MESSAGE,
        )
        super().__init__(host, router, outbound_queue_size=outbound_queue_size, **kwargs)
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
            self.drop_dead_peer(peer_id)

    async def push_msg(self, msg_forwarder: ID, msg: Any) -> None:
        try:
            await super().push_msg(msg_forwarder, msg)
        except trio.Cancelled:
            raise
        except Exception as exc:  # an unparseable key in the signature check, and the like
            self._penalise(msg_forwarder, exc)

    def _penalise(self, peer_id: ID, exc: BaseException) -> None:
        logger.warning("dropping malformed pubsub frame from %s: %r", peer_id, exc)
        if self._on_malformed is not None:
            self._on_malformed(peer_id, exc)
        strikes = self._strikes.get(peer_id, 0) + 1
        self._strikes[peer_id] = strikes
        libp2p_compat.score_invalid_message(self.router, peer_id, list(self.topic_ids))
        if strikes >= self.malformed_strikes and self.manager.is_running:
            self._strikes.pop(peer_id, None)
            self._banned_until[peer_id] = time.monotonic() + self.malformed_cooldown_s
            self.add_to_blacklist(peer_id)

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
