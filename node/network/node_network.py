"""`NodeNetwork`: the node's libp2p host, gossip, blob exchange and block sync as one service.

Construction and lifetime (trio, one root nursery)::

    net = NodeNetwork(identity.key_pair(), settings, store)
    net.set_validator(Topic.CONSENSUS, check_consensus)   # data, origin -> None | reason
    net.subscribe(Topic.CONSENSUS, on_consensus)          # async (data, origin) -> None
    await nursery.start(net.run)                          # listening, subscribed, bootstrapped
    await net.publish(Topic.CONSENSUS, data)

GossipSub overrides of py-libp2p 0.8.1 defaults made for a public network (docs/libp2p-compat.md):
mesh degree 4 (not 6-12: a complete mesh of a consortium delivers each message n-1 times),
gossipsub v1.1 (v1.2's IDONTWANT costs an RPC per mesh peer per message), no adaptive
gossip, Yamux window updates batched. Overrides of defaults that lose messages silently:
heartbeat 1 s; the library's spam protection
(10 msg/s per topic, own messages included) is off and replaced by our per-forwarder token
bucket; outbound queues of 1024; subscriptions drained by dedicated tasks into a bounded
channel per topic so a slow handler never makes the library drop messages silently; seqno
from `time_ns`. Eclipse protection (IP diversity) is off: every peer of a devnet shares
127.0.0.1 and the allow-list already pins who may connect.

Transport (`NetworkSettings.transport`): "direct" (the default) sends our messages straight to
each connected peer over one stream each (direct.py), without relay, as the consensus simulator
models the network; "gossip" publishes them through GossipSub, which relays, for a consortium
whose members cannot all reach each other. Both are always received.

Every message, whichever way it came, passes the topic validator before it is delivered or
relayed: a size cap per topic, the rate limit, then the caller's check. A rejection is counted
by (topic, reason) and the message is neither delivered nor forwarded. Our own publishes are
delivered to nobody locally (the driver knows what it sent).

A health loop (every `health_interval_s`) repairs what py-libp2p leaves broken: it redials
known peers that are not connected (after `unblock_peer`, or the 60 s negative dial cache
would hide a restarted peer), re-opens the pubsub stream to a peer that is connected but
absent from the pubsub peer set, and lifts expired malformed-frame bans.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.tools.anyio_service import background_trio_service

from node.network.blob_exchange import BlobExchange
from node.network.block_sync import BlockSync, SyncBatch
from node.network.counters import NetworkCounters
from node.network.direct import DirectMesh
from node.network.guarded_pubsub import GuardedPubsub
from node.network.host import PeerGate, build_host
from node.network.libp2p_compat import batch_yamux_window_updates, unblock_peer
from node.network.settings import TRANSPORTS, NetworkSettings, TokenBucket
from node.network.topics import HARD_SIZE_CAP, Topic
from node.store import ChainStore

logger = logging.getLogger(__name__)

# A topic validator: (message bytes, origin peer id) -> None to accept, or a short reason.
Validator = Callable[[bytes, str], str | None]
Handler = Callable[[bytes, str], Awaitable[None]]


@functools.lru_cache(maxsize=4096)
def peer_text(raw: bytes) -> str:
    """A peer id's base58 text. py-libp2p's base58 is pure Python and a new `ID` computes it
    again, once per message; the peers of a consortium are few, so it is cached."""
    return ID(raw).to_base58()


@functools.lru_cache(maxsize=4096)
def peer_of(text: str) -> ID:
    """The `ID` of a base58 peer id (cached, as `peer_text`; a bad one raises every time)."""
    return ID.from_base58(text)


@dataclass(slots=True)
class _KnownPeer:
    info: PeerInfo
    next_dial: float = 0.0
    backoff: float = 0.5


class NodeNetwork:
    """The libp2p side of a node: gossip topics, blobs, block sync, peer upkeep."""

    def __init__(self, key_pair: KeyPair, settings: NetworkSettings, store: ChainStore) -> None:
        for topic, cap in settings.size_caps.items():
            if cap > HARD_SIZE_CAP:
                raise ValueError(
                    f"size cap of {topic} is {cap}, above the hard cap {HARD_SIZE_CAP}"
                )
        self.settings = settings
        self.store = store
        self.counters = NetworkCounters()
        batch_yamux_window_updates()
        self.gate = PeerGate(settings.allowed_peers, self._on_refused, self._on_unsupported_key)
        self.host = build_host(key_pair, settings.listen, self.gate)
        self.peer_id: ID = self.host.get_id()
        degree, low, high = settings.gossip_degree
        self.router = GossipSub(
            # Not /meshsub/1.2.0: its IDONTWANT sends one extra RPC to every mesh peer for
            # every message received, worth it for large messages only; ours are < 64 KiB.
            protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=degree,
            degree_low=low,
            degree_high=high,
            heartbeat_interval=settings.heartbeat_s,
            # Adaptive gossip re-sizes the mesh from a "network health" score every
            # heartbeat: GRAFT/PRUNE churn (and GRAFT-flood penalties) in a small network.
            adaptive_gossip_enabled=False,
            spam_protection_enabled=False,
            eclipse_protection_enabled=False,
        )
        self.pubsub = GuardedPubsub(
            self.host,
            self.router,
            strict_signing=True,
            outbound_queue_size=settings.outbound_queue_size,
            on_malformed=self._on_malformed,
        )
        self.blobs = BlobExchange(
            self.host,
            store.blobs,
            self.counters,
            max_blob_bytes=settings.max_blob_bytes,
            timeout_s=settings.blob_timeout_s,
        )
        self.sync = BlockSync(self.host, store, self.counters)
        if settings.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        self.direct = DirectMesh(
            self.host,
            self.counters,
            settings.size_caps,
            max_blob_push=settings.max_blob_push,
            queue_size=settings.outbound_queue_size,
            timeout_s=settings.direct_timeout_s,
            on_message=self._on_direct,
            on_blob=self._on_pushed_blob,
        )
        self._deliver: dict[Topic, trio.MemorySendChannel[tuple[bytes, str]]] = {}
        self._validators: dict[Topic, Validator] = {}
        self._direct_validators: dict[Topic, Validator] = {}
        self._handlers: dict[Topic, Handler] = {}
        self._buckets: dict[ID, TokenBucket] = {}
        self._known: dict[ID, _KnownPeer] = {}
        self._missing_from_pubsub: dict[ID, int] = {}
        self._repairing: set[ID] = set()
        self._dialing: set[ID] = set()
        for addr in settings.bootstrap:
            self.add_known_peer(addr)
        self._wire = {topic: topic.wire_name(settings.chain_id) for topic in Topic}
        self._by_wire = {wire: topic for topic, wire in self._wire.items()}
        for topic, wire in self._wire.items():
            self.pubsub.set_topic_validator(wire, self._make_validator(topic), False)

    # -- configuration (before or after run) ----------------------------------------------

    def set_validator(self, topic: Topic, validator: Validator) -> None:
        """Install the decode/size/signature/height check for a topic."""
        self._validators[topic] = validator

    def set_direct_validator(self, topic: Topic, validator: Validator) -> None:
        """The check of messages a peer sent us directly (the topic's gossip check without)."""
        self._direct_validators[topic] = validator

    def subscribe(self, topic: Topic, handler: Handler) -> None:
        """Deliver every accepted message of `topic` from other peers to `handler`, in order."""
        self._handlers[topic] = handler

    def add_known_peer(self, addr: str) -> ID:
        """Remember a peer's multiaddr (with /p2p/ID): it is dialed and redialed until connected."""
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        if info.peer_id != getattr(self, "peer_id", None):
            self._known[info.peer_id] = _KnownPeer(info)
        return info.peer_id

    def set_allowed_peers(self, allowed: Collection[str] | None) -> None:
        """Replace the connection allow-list (e.g. once the genesis is loaded)."""
        self.gate.allowed = None if allowed is None else set(allowed)

    async def follow_members(self, allowed: Collection[str]) -> None:
        """Gate on the member set: replace the allow-list and hang up on every connected peer
        no longer in it (a removed member; docs/ARCHITECTURE.md "Governance")."""
        self.set_allowed_peers(allowed)
        for peer in self._peer_ids():
            if not self.gate.allows(peer):
                self._known.pop(peer, None)
                self.direct.close_peer(peer)
                with contextlib.suppress(Exception):
                    await self.host.disconnect(peer)

    # -- the service ----------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, subscribe to every topic, dial the bootstrap peers, keep peers healthy."""
        try:
            async with (
                self.host.run(listen_addrs=[multiaddr.Multiaddr(self.settings.listen)]),
                background_trio_service(self.pubsub),
                background_trio_service(self.router),
            ):
                await self.pubsub.wait_until_ready()
                async with trio.open_nursery() as nursery:
                    for topic, wire in self._wire.items():
                        subscription = await self.pubsub.subscribe(wire)
                        send, receive = trio.open_memory_channel[tuple[bytes, str]](
                            self.settings.delivery_queue_size
                        )
                        self._deliver[topic] = send.clone()
                        nursery.start_soon(self._drain, topic, subscription, send)
                        nursery.start_soon(self._dispatch, topic, receive)
                    self.direct.start(nursery)
                    self._defer_crossing_dials()
                    await self._redial_due(nursery)
                    nursery.start_soon(self._health_loop, nursery)
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                try:
                    await self.host.close()
                except Exception as exc:
                    logger.debug("host close: %r", exc)

    @property
    def listen_addrs(self) -> list[str]:
        """Our full multiaddrs with /p2p/ (valid once `run` has started)."""
        return [
            f"{a}/p2p/{self.peer_id}" for a in self.host.get_addrs() if "/p2p/" not in str(a)
        ] or [str(a) for a in self.host.get_addrs()]

    # -- gossip ---------------------------------------------------------------------------

    async def publish(self, topic: Topic, data: bytes) -> None:
        """Gossip `data` on `topic`; a message above the topic's cap is our bug (ValueError)."""
        cap = self.settings.size_caps[topic]
        if len(data) > cap:
            raise ValueError(f"{topic} message of {len(data)} bytes exceeds its cap of {cap}")
        if self.settings.transport == "direct":
            self.direct.send(topic, data, self._direct_peers())
        else:
            await self.pubsub.publish(self._wire[topic], data)
        self.counters.messages_out[topic.value] += 1
        self.counters.bytes_out[topic.value] += len(data)

    def push_blob(self, blob_hash: bytes, data: bytes | bytearray | memoryview) -> bool:
        """Send a small blob to every connected peer ahead of the message that names it, so
        none of them has to fetch it (direct transport; False when not pushed)."""
        if self.settings.transport != "direct" or len(data) > self.settings.max_blob_push:
            return False
        self.direct.send_blob(blob_hash, bytes(data), self._direct_peers())
        self.counters.blob_pushes["sent"] += 1
        return True

    def _direct_peers(self) -> list[ID]:
        return [p for p in self._peer_ids() if self.gate.allows(p)]

    def _check(
        self, topic: Topic, data: bytes, forwarder: ID, origin: bytes, *, direct: bool = False
    ) -> bool:
        """The topic validator of both transports: cap, rate limit, then the caller's check;
        a rejection is counted by (topic, reason)."""
        reason: str | None = None
        if len(data) > self.settings.size_caps[topic]:
            reason = "oversized"
        elif forwarder != self.peer_id and not self._bucket(forwarder).take():
            reason = "rate_limited"
        else:
            check = (direct and self._direct_validators.get(topic)) or self._validators.get(topic)
            if check is not None:
                try:
                    reason = check(data, peer_text(origin))
                except Exception:
                    logger.exception("topic validator for %s raised", topic.value)
                    reason = "validator_error"
        if reason is None:
            return True
        self.counters.rejected[(topic.value, reason)] += 1
        return False

    def _make_validator(self, topic: Topic) -> Callable[[ID, Any], bool]:
        def validate(forwarder: ID, msg: Any) -> bool:
            return self._check(topic, msg.data, forwarder, msg.from_id)

        return validate

    def _on_direct(self, topic: Topic, data: bytes, peer: ID) -> None:
        """A message a peer sent us directly: its sender is its origin (Noise authenticated
        the peer id). A re-send is delivered again, as over gossip: the validator's cache
        makes it cheap, and it is how a message the core had to drop (a future height
        beyond its buffer) comes back."""
        if not self._check(topic, data, peer, peer.to_bytes(), direct=True):
            return
        deliver = self._deliver.get(topic)
        if deliver is None:  # not running yet: nobody subscribed
            self.counters.dropped_slow_consumer[topic.value] += 1
            return
        self._enqueue(topic, deliver, data, peer.to_base58())

    def _enqueue(
        self,
        topic: Topic,
        send: trio.MemorySendChannel[tuple[bytes, str]],
        data: bytes,
        origin: str,
    ) -> None:
        """Count an accepted message in and queue it for the topic's handler (both transports)."""
        self.counters.messages_in[topic.value] += 1
        self.counters.bytes_in[topic.value] += len(data)
        try:
            send.send_nowait((data, origin))
        except trio.WouldBlock:
            self.counters.dropped_slow_consumer[topic.value] += 1

    def _on_pushed_blob(self, blob_hash: bytes, data: bytes, peer: ID) -> None:
        if not self._bucket(peer).take():
            self.counters.blob_pushes["rate_limited"] += 1
            return
        self.counters.blob_pushes[self.blobs.pushed.offer(blob_hash, data)] += 1

    def _bucket(self, peer: ID) -> TokenBucket:
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = TokenBucket(
                self.settings.rate_per_peer, self.settings.burst_per_peer
            )
        return bucket

    async def _drain(self, topic: Topic, subscription: Any, send: trio.MemorySendChannel) -> None:
        own = self.peer_id.to_bytes()
        async with send:
            while True:
                msg = await subscription.get()
                if msg.from_id == own:
                    continue
                self._enqueue(topic, send, msg.data, peer_text(msg.from_id))

    async def _dispatch(self, topic: Topic, receive: trio.MemoryReceiveChannel) -> None:
        async with receive:
            async for data, origin in receive:
                handler = self._handlers.get(topic)
                if handler is not None:
                    await handler(data, origin)  # a handler bug is ours: let it be loud

    # -- blobs and sync -------------------------------------------------------------------

    async def fetch_blob(self, blob_hash: bytes, from_peers: Sequence[str] | None = None) -> bytes:
        """The blob with this SHA-256, from the store or from peers (verified, then stored)."""
        peers = [peer_of(p) for p in from_peers] if from_peers is not None else self._peer_ids()
        return await self.blobs.fetch(blob_hash, peers)

    async def fetch_blob_to_store(
        self, blob_hash: bytes, from_peers: Sequence[str] | None = None
    ) -> bytes | None:
        """Like `fetch_blob`, but leaves the verified blob in the store without reading it;
        returns its bytes when a peer had pushed them (`BlobExchange.fetch_to_store`)."""
        peers = [peer_of(p) for p in from_peers] if from_peers is not None else self._peer_ids()
        return await self.blobs.fetch_to_store(blob_hash, peers)

    async def fetch_blocks(
        self, peer: str, from_height: int, max_count: int | None = None
    ) -> SyncBatch:
        """Up to `max_count` stored blocks of `peer` from `from_height` (unverified bytes)."""
        return await self.sync.fetch(peer_of(peer), from_height, max_count)

    # -- peers ----------------------------------------------------------------------------

    def _peer_ids(self) -> list[ID]:
        return list(self.host.get_connected_peers())

    def peers(self) -> list[str]:
        """Peer ids we hold a connection to."""
        return sorted(p.to_base58() for p in self._peer_ids())

    def pubsub_peers(self) -> list[str]:
        """Peer ids we hold a pubsub stream with."""
        return sorted(p.to_base58() for p in self.pubsub.peers)

    def topic_peers(self, topic: Topic) -> list[str]:
        return sorted(p.to_base58() for p in self.pubsub.peer_topics.get(self._wire[topic], ()))

    async def connect(self, addr: str) -> str:
        """Dial a peer now (and remember it for redials); returns its peer id."""
        peer_id = self.add_known_peer(addr)
        unblock_peer(self.host, peer_id)
        with trio.fail_after(self.settings.dial_timeout_s):
            await self.host.connect(self._known[peer_id].info)
        return peer_id.to_base58()

    def _on_refused(self, peer_id: ID) -> None:
        self.counters.refused_connections += 1
        logger.info("refused connection from %s: not in the allow-list", peer_id)

    def _on_unsupported_key(self) -> None:
        self.counters.refused_unsupported_key += 1

    def _on_malformed(self, peer_id: ID, exc: BaseException) -> None:
        self.counters.malformed_rpc_frames += 1
        self.counters.malformed_by_peer[peer_id.to_base58()] += 1

    async def _health_loop(self, nursery: trio.Nursery) -> None:
        reported: dict[str, int] = {}
        while True:
            await trio.sleep(self.settings.health_interval_s)
            dropped = dict(self.counters.direct_dropped)
            if dropped != reported:  # frames lost before the wire: the shell re-sends them
                logger.info("direct frames dropped so far, by cause: %s", dropped)
                reported = dropped
            self.pubsub.lift_expired_bans()
            await self._redial_due(nursery)
            self._repair_pubsub_links(nursery)

    def _defer_crossing_dials(self) -> None:
        """At start, let the peer with the smaller id dial (see `dial_defer_s`)."""
        now, mine = trio.current_time(), self.peer_id.to_bytes()
        for peer_id, known in self._known.items():
            if peer_id.to_bytes() < mine:
                known.next_dial = max(known.next_dial, now + self.settings.dial_defer_s)

    async def _redial_due(self, nursery: trio.Nursery) -> None:
        connected = set(self._peer_ids())
        now = trio.current_time()
        for peer_id, known in self._known.items():
            if peer_id in connected or peer_id in self._dialing or known.next_dial > now:
                if peer_id in connected:
                    known.backoff = 0.5
                continue
            if self.pubsub.is_banned(peer_id):
                continue
            self._dialing.add(peer_id)
            nursery.start_soon(self._dial, known)

    async def _dial(self, known: _KnownPeer) -> None:
        peer_id = known.info.peer_id
        try:
            unblock_peer(self.host, peer_id)
            with trio.fail_after(self.settings.dial_timeout_s):
                await self.host.connect(known.info)
            self.counters.redials += 1
            known.backoff = 0.5
        except trio.Cancelled:
            raise
        except Exception as exc:
            logger.debug("dial %s failed: %r", peer_id, exc)
            known.next_dial = trio.current_time() + known.backoff
            known.backoff = min(known.backoff * 2, self.settings.redial_max_backoff_s)
        finally:
            self._dialing.discard(peer_id)

    def _repair_pubsub_links(self, nursery: trio.Nursery) -> None:
        """Re-open pubsub to peers connected at the TCP level but absent from pubsub."""
        connected = set(self._peer_ids())
        for peer_id in list(self._missing_from_pubsub):
            if peer_id not in connected or peer_id in self.pubsub.peers:
                del self._missing_from_pubsub[peer_id]
        for peer_id in connected:
            if peer_id in self.pubsub.peers or self.pubsub.is_banned(peer_id):
                continue
            # Two checks in a row: a fresh connection registers with pubsub by itself.
            seen = self._missing_from_pubsub[peer_id] = (
                self._missing_from_pubsub.get(peer_id, 0) + 1
            )
            if seen >= 2 and peer_id not in self._repairing:
                self._repairing.add(peer_id)
                nursery.start_soon(self._repair, peer_id)

    async def _repair(self, peer_id: ID) -> None:
        try:
            self.counters.pubsub_repairs += 1
            logger.info("peer %s is connected but not in pubsub: re-opening the stream", peer_id)
            await self.pubsub.ensure_peer_stream(peer_id, timeout=self.settings.dial_timeout_s)
        except trio.Cancelled:
            raise
        except Exception as exc:
            logger.debug("pubsub repair of %s failed: %r", peer_id, exc)
        finally:
            self._repairing.discard(peer_id)
            self._missing_from_pubsub.pop(peer_id, None)
