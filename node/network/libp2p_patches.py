"""Per-instance patches of py-libp2p 0.8.1: the peer-id gate, the dial cache, `CompatPubsub`.

Part of the compatibility layer whose entry point is `node.network.libp2p_compat` (import it
from there: it checks the version before this module imports the library). Every private name
touched here is an entry of `PRIVATE_NAMES` (`node.network.libp2p_private`), checked with
`require` and reached through `lookup`, `replace_existing` or `rebind_global`. Patches apply to
the host, upgrader, pubsub, router and queue objects a node creates; no module of the library
is modified, so a stock `Pubsub` in the same process behaves as shipped.

The py-libp2p 0.8.1 pitfalls worked around here (measured on 127.0.0.1; the list of every
pitfall the node code works around, and where, is docs/libp2p-compat.md):

1. **No peer-id gate.** The library's `ConnectionGate` filters IP addresses only. The first
   point where the remote peer id is authenticated is `TransportUpgrader.upgrade_security`
   (the Noise handshake), called by the swarm for both directions; `wrap_upgrade_security`
   wraps it on the upgrader of one host.
2. **Sender records verified on every RPC.** Each inbound pubsub RPC carries the sender's
   signed peer record, and `Pubsub.continuously_read_stream` and `GossipSub.handle_rpc`
   both verify its Ed25519 envelope (`maybe_consume_signed_record`), i.e. twice per RPC,
   about 5% of a devnet node's CPU. `CompatPubsub` gives its own `continuously_read_stream`
   and its router's `handle_rpc` a copy whose global `maybe_consume_signed_record` is the
   instance's `consume_sender_record`: a given record from a given peer is verified (and
   stored in this host's peerstore) once per `SENDER_RECORD_TTL_S`; a new or changed record
   is verified as before, and other pubsub instances keep their own cache.
3. **Outbound queue of 32 RPCs per peer.** A burst of more than ~16 messages is dropped
   without an error. `Pubsub._handle_new_peer` builds each peer's `RpcQueue` with the
   default size and inserts it into `peer_queues`; `CompatPubsub` replaces that dict with one
   that raises the bound (`RpcQueue._queue.max_size`) of each queue as it is inserted,
   before anything is pushed.
4. **Colliding seqnos.** The seqno counter starts at `int(time.time())`; a node restarted
   within a few seconds that had published more than one message per second reuses message
   ids, and peers drop its messages as seen. `CompatPubsub` starts `counter` at
   `time.time_ns()`.
5. **Blacklist teardown race.** The stock `_teardown_if_connected` deletes the peer after an
   await and raises KeyError (killing the pubsub service) if the dead-peer path removed the
   peer meanwhile; `CompatPubsub` pops it instead.
6. **Negative dial cache.** After a peer disconnects, dialing it fails for 60 s;
   `unblock_peer` clears the entry (`Swarm.unblock_peer`, not on `INetworkService`).
7. **A window update per read.** Yamux sends a WINDOW_UPDATE frame (its own Noise
   record and socket write) after every read of a stream, about 15% of a devnet node's
   CPU; `batch_yamux_window_updates` switches to go-yamux's batching (half a window).
8. **A window update every other small frame, even batched.** With the switch of 7 off, a
   read that leaves the window short of its target by less than half still sends an update
   (the "partial slack" branch of `YamuxStream._auto_tune_and_send_window_update`), so on a
   stream of small frames every second frame was answered by a WINDOW_UPDATE: a fifth of a
   devnet node's socket writes, each its own Noise record on both sides.
   `send_window_updates_by_halves` gives one stream go-yamux's rule alone: credit is returned
   once at least half the window has been read.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub import pubsub as _pubsub_module
from libp2p.pubsub import rpc_queue as _rpc_queue_module
from libp2p.pubsub import utils as _pubsub_utils
from libp2p.pubsub.pubsub import Pubsub
from libp2p.stream_muxer.yamux.yamux import YamuxStream

from node.libp2p_extras import ExtraNotLoaded, not_loaded_cause
from node.network.libp2p_private import (
    FORGET_SUBSCRIPTIONS,
    GOSSIPSUB_CONSUME_RECORD,
    GOSSIPSUB_SCORER,
    HANDLE_DEAD_PEER,
    HANDLE_RPC,
    NEXT_SEQNO,
    ON_INVALID_MESSAGE,
    PEER_QUEUES,
    PUBSUB_CONSUME_RECORD,
    QUEUE_MAX_SIZE,
    READ_STREAM,
    RPC_QUEUE_INNER,
    SEQNO_COUNTER,
    SIGNING_PREFIX,
    SWARM_UNBLOCK_PEER,
    SWARM_UPGRADER,
    TEARDOWN_IF_CONNECTED,
    UPGRADE_SECURITY,
    VERIFY_SENDER_RECORD,
    YAMUX_RELEASE_ON_READ,
    YAMUX_WINDOW_UPDATE,
    PrivateName,
    compat_error,
    lookup,
    rebind_global,
    replace_existing,
    require,
)

# -- host ----------------------------------------------------------------------------------


def wrap_upgrade_security(
    host: IHost,
    admit: Callable[[Any], Awaitable[None]],
    unsupported: Callable[[ExtraNotLoaded], Exception],
) -> None:
    """Await `admit(secured_conn)` after every security handshake of `host`, both directions.

    `admit` raises to refuse the connection (before any muxer, stream or pubsub state exists).
    A handshake that fails on a feature bcfl does not load (the remote's RSA or secp256k1
    identity key, node/libp2p_extras.py) raises `unsupported(exc)` instead.
    """
    require(SWARM_UPGRADER, UPGRADE_SECURITY)
    upgrader = lookup(host.get_network(), SWARM_UPGRADER)
    original = lookup(upgrader, UPGRADE_SECURITY)

    async def upgrade_security(raw_conn: Any, is_initiator: bool, peer_id: ID | None = None) -> Any:
        try:
            secured = await original(raw_conn, is_initiator, peer_id)
        except Exception as exc:
            cause = not_loaded_cause(exc)
            if cause is None:
                raise
            raise unsupported(cause) from exc
        await admit(secured)
        return secured

    replace_existing(upgrader, UPGRADE_SECURITY, upgrade_security)


YAMUX_RELEASE_ENV = "PY_YAMUX_RELEASE_ON_READ"


def batch_yamux_window_updates() -> None:
    """Make Yamux return receive credit in batches, not with a frame after every read.

    Process-wide (py-libp2p reads the switch from the environment at each call); call it
    once at daemon start-up.
    """
    require(YAMUX_RELEASE_ON_READ)
    os.environ[YAMUX_RELEASE_ENV] = "0"


def send_window_updates_by_halves(stream: Any) -> bool:
    """Make one Yamux stream return receive credit only once half its window has been read
    (go-yamux's `sendWindowUpdate`; pitfall 8). For a stream whose reader never needs more
    than the default window: the window is not auto-tuned. `stream` is a `NetStream` or the
    muxed stream itself; False (and nothing changed) when it is not Yamux."""
    muxed = getattr(stream, "muxed_stream", stream)
    if not isinstance(muxed, YamuxStream):
        return False
    require(YAMUX_WINDOW_UPDATE)

    async def by_halves(*, bytes_read: int = 0) -> None:
        async with muxed.window_lock:
            buffered = len(muxed.conn.stream_buffers.get(muxed.stream_id, b""))
            delta = muxed.target_recv_window - (muxed.recv_window + buffered)
            if delta < muxed.target_recv_window // 2:
                return
            muxed.recv_window += delta
        await muxed.send_window_update(delta, skip_lock=True)

    replace_existing(muxed, YAMUX_WINDOW_UPDATE, by_halves)
    return True


def unblock_peer(host: IHost, peer_id: ID) -> None:
    """Forget a failed dial to `peer_id`, so the next dial is attempted now (not in 60 s)."""
    require(SWARM_UNBLOCK_PEER)
    lookup(host.get_network(), SWARM_UNBLOCK_PEER)(peer_id)


# -- pubsub --------------------------------------------------------------------------------

SENDER_RECORD_TTL_S = 600.0
_SENDER_RECORDS_MAX = 4096


def next_seqno(pubsub: Pubsub) -> bytes:
    """The next seqno of `pubsub`, for a message signed outside `publish()`."""
    require(NEXT_SEQNO)
    seqno: bytes = lookup(pubsub, NEXT_SEQNO)()
    return seqno


def pubsub_signing_prefix() -> str:
    """The prefix pubsub message signatures cover (before the serialized message)."""
    require(SIGNING_PREFIX)
    prefix: str = lookup(_pubsub_module, SIGNING_PREFIX)
    return prefix


def score_invalid_message(router: Any, peer_id: ID, topics: Iterable[str]) -> None:
    """Count an invalid message from `peer_id` on each topic in the router's peer score."""
    scorer = lookup(router, GOSSIPSUB_SCORER)
    if scorer is None:  # a GossipSub built without scoring
        return
    on_invalid = lookup(scorer, ON_INVALID_MESSAGE)
    for topic in topics:
        on_invalid(peer_id, topic)


def _widen(queue: Any, max_size: int) -> None:
    replace_existing(lookup(queue, RPC_QUEUE_INNER), QUEUE_MAX_SIZE, max_size)


class _SizedQueues(dict):  # type: ignore[type-arg]
    """`peer_queues` that raises each new queue's bound as pubsub inserts it (before any push)."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size

    def __setitem__(self, key: Any, queue: Any) -> None:
        _widen(queue, self.max_size)
        super().__setitem__(key, queue)


class CompatPubsub(Pubsub):
    """A py-libp2p `Pubsub` with the per-instance fixes 2-5 of this module's docstring.

    Args:
        host, router, kwargs: as for `Pubsub` (the router must be this node's own: its
            `handle_rpc` is rebound on the instance).
        outbound_queue_size: the bound of each peer's outbound RPC queue (stock: 32).
    """

    RELIES_ON: tuple[PrivateName, ...] = (
        PUBSUB_CONSUME_RECORD,
        GOSSIPSUB_CONSUME_RECORD,
        VERIFY_SENDER_RECORD,
        READ_STREAM,
        HANDLE_RPC,
        SEQNO_COUNTER,
        PEER_QUEUES,
        RPC_QUEUE_INNER,
        QUEUE_MAX_SIZE,
        TEARDOWN_IF_CONNECTED,
        FORGET_SUBSCRIPTIONS,
    )

    def __init__(self, host: IHost, router: Any, *, outbound_queue_size: int = 1024, **kwargs: Any):
        require(*self.RELIES_ON)
        super().__init__(host, router, **kwargs)
        replace_existing(self, SEQNO_COUNTER, time.time_ns())
        queues = lookup(self, PEER_QUEUES)
        if type(queues) is not dict or queues:
            raise compat_error(
                PEER_QUEUES, f"is a {type(queues).__name__} at start, not an empty dict"
            )
        _widen(_rpc_queue_module.RpcQueue(), outbound_queue_size)  # fail now, not per peer
        self.peer_queues = _SizedQueues(outbound_queue_size)
        self._verify_sender_record = lookup(_pubsub_utils, VERIFY_SENDER_RECORD)
        self._sender_records: dict[tuple[bytes, bytes], float] = {}
        rebind_global(self, READ_STREAM, PUBSUB_CONSUME_RECORD, self.consume_sender_record)
        rebind_global(router, HANDLE_RPC, GOSSIPSUB_CONSUME_RECORD, self.consume_sender_record)

    def consume_sender_record(self, msg: Any, host: IHost, peer_id: ID) -> bool:
        """The stock sender-record check, skipped for a record this peer sent us recently."""
        if not msg.HasField("senderRecord"):
            return True
        key = (peer_id.to_bytes(), msg.senderRecord)
        now = time.monotonic()
        if now - self._sender_records.get(key, -SENDER_RECORD_TTL_S) < SENDER_RECORD_TTL_S:
            return True
        ok = bool(self._verify_sender_record(msg, host, peer_id))
        if ok:
            if len(self._sender_records) >= _SENDER_RECORDS_MAX:
                self._sender_records.clear()
            self._sender_records[key] = now
        return ok

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
        lookup(self, FORGET_SUBSCRIPTIONS)(peer_id)

    def drop_dead_peer(self, peer_id: ID) -> None:
        """The library's cleanup after a peer's pubsub stream failed."""
        require(HANDLE_DEAD_PEER)
        lookup(self, HANDLE_DEAD_PEER)(peer_id)
