"""Real libp2p hosts on 127.0.0.1 in one trio process: gossip, validation, gating, blobs, sync."""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio

from node.home import NodeHome
from node.keys import NodeIdentity
from node.network import DEFAULT_SIZE_CAPS, NetworkSettings, NodeNetwork, Topic
from node.store import ChainStore

# py-libp2p 0.8.1 leaves a dialing socket unclosed now and then when a host shuts down mid-dial;
# it is the library's, not ours, and would otherwise surface as a warning in a later test.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(autouse=True)
def collect_libp2p_garbage() -> Iterator[None]:
    """Collect the library's leaked sockets inside this module, under its warning filter."""
    yield
    gc.collect()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_net(tmp: Path, name: str, seed: bytes | None = None, **settings: object) -> NodeNetwork:
    """A network on the gossip transport unless `transport` says otherwise: these tests are
    about GossipSub's relaying (tests/integration/test_direct_transport.py covers direct)."""
    settings.setdefault("transport", "gossip")
    store = ChainStore.open(NodeHome(tmp / name))
    key_pair = NodeIdentity(seed or os.urandom(32)).key_pair()
    return NodeNetwork(key_pair, NetworkSettings(chain_id="test", **settings), store)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def mesh_ready(nets: list[NodeNetwork], topic: Topic, degree: int) -> None:
    await wait_until(lambda: all(len(n.topic_peers(topic)) >= degree for n in nets))


class Inbox:
    """Collects delivered messages per node."""

    def __init__(self, nets: list[NodeNetwork], topic: Topic) -> None:
        self.got: list[list[bytes]] = [[] for _ in nets]
        for i, net in enumerate(nets):
            net.subscribe(topic, self._handler(i))

    def _handler(self, i: int) -> Callable[[bytes, str], Awaitable[None]]:
        async def handle(data: bytes, origin: str) -> None:
            self.got[i].append(data)

        return handle


async def start_all(nursery: trio.Nursery, nets: list[NodeNetwork]) -> None:
    for net in nets:
        await nursery.start(net.run)


async def test_gossip_reaches_every_node_of_four(tmp_path: Path) -> None:
    """A burst of 50 messages from each end of a 4-node line reaches all other nodes, in full."""
    nets = [make_net(tmp_path, f"n{i}") for i in range(4)]
    inbox = Inbox(nets, Topic.RECEIPTS)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, nets)
        for a, b in zip(nets, nets[1:], strict=False):
            await b.connect(a.listen_addrs[0])
        await mesh_ready(nets[1:3], Topic.RECEIPTS, 2)
        await mesh_ready([nets[0], nets[3]], Topic.RECEIPTS, 1)
        await trio.sleep(
            1.5
        )  # let one heartbeat graft the mesh: not a sync point, the wait below is
        for i in range(50):
            await nets[0].publish(Topic.RECEIPTS, b"a%03d" % i)
            await nets[3].publish(Topic.RECEIPTS, b"b%03d" % i)
        await wait_until(
            lambda: (
                all(len(g) >= 50 for g in inbox.got[1:3])
                and len(inbox.got[0]) >= 50
                and len(inbox.got[3]) >= 50
            )
        )
        assert sorted(inbox.got[3]) == sorted(b"a%03d" % i for i in range(50))
        assert sorted(inbox.got[0]) == sorted(b"b%03d" % i for i in range(50))
        assert len(inbox.got[1]) == len(inbox.got[2]) == 100
        assert nets[0].counters.messages_out["receipts"] == 50
        assert nets[3].counters.messages_in["receipts"] == 50
        nursery.cancel_scope.cancel()


async def test_rejected_message_is_counted_and_not_relayed(tmp_path: Path) -> None:
    """A message the middle node's validator rejects never reaches the node behind it."""
    big_caps = {**DEFAULT_SIZE_CAPS, Topic.CONSENSUS: 128 * 1024}
    nets = [make_net(tmp_path, "n0", size_caps=big_caps)]
    nets += [make_net(tmp_path, f"n{i}") for i in (1, 2)]
    inbox = Inbox(nets, Topic.CONSENSUS)
    nets[1].set_validator(
        Topic.CONSENSUS, lambda data, origin: "bad_cbor" if data == b"bad" else None
    )
    async with trio.open_nursery() as nursery:
        await start_all(nursery, nets)
        await nets[1].connect(nets[0].listen_addrs[0])
        await nets[2].connect(nets[1].listen_addrs[0])
        await mesh_ready([nets[1]], Topic.CONSENSUS, 2)
        await mesh_ready([nets[0], nets[2]], Topic.CONSENSUS, 1)
        await nets[0].publish(Topic.CONSENSUS, b"bad")
        await nets[0].publish(Topic.CONSENSUS, b"x" * 70_000)  # above the 64 KiB consensus cap
        await nets[0].publish(Topic.CONSENSUS, b"good")  # ordered after the bad ones on the link
        await wait_until(lambda: inbox.got[2] == [b"good"])
        assert inbox.got[1] == [b"good"]
        assert nets[1].counters.rejected[("consensus", "bad_cbor")] == 1
        assert nets[1].counters.rejected[("consensus", "oversized")] == 1
        nursery.cancel_scope.cancel()


async def test_publish_above_cap_is_our_bug(tmp_path: Path) -> None:
    """Publishing a message above the topic cap raises instead of vanishing silently."""
    net = make_net(tmp_path, "n")
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        with pytest.raises(ValueError, match="exceeds its cap"):
            await net.publish(Topic.RECEIPTS, b"x" * (64 * 1024))
        nursery.cancel_scope.cancel()


async def test_gating_refuses_a_stranger(tmp_path: Path) -> None:
    """A peer id outside the allow-list cannot connect, in either direction; refusals counted."""
    seeds = [os.urandom(32) for _ in range(3)]
    ids = [NodeIdentity(s).peer_id for s in seeds]
    allowed = {ids[0], ids[1]}
    a = make_net(tmp_path, "a", seeds[0], allowed_peers=allowed)
    b = make_net(tmp_path, "b", seeds[1], allowed_peers=allowed)
    stranger = make_net(tmp_path, "s", seeds[2])
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b, stranger])
        await b.connect(a.listen_addrs[0])
        with pytest.raises(Exception):  # noqa: B017 - the swarm wraps the refusal several ways
            await stranger.connect(a.listen_addrs[0])
        assert a.counters.refused_connections >= 1
        with pytest.raises(Exception):  # noqa: B017
            await a.connect(stranger.listen_addrs[0])
        assert a.counters.refused_connections >= 2
        assert a.peers() == [ids[1]]
        nursery.cancel_scope.cancel()


async def test_blob_of_100_mb_transfers_and_is_verified(tmp_path: Path) -> None:
    """A 100 MB blob crosses one Yamux stream, is hash-checked and stored; prints MB/s."""
    a, b = make_net(tmp_path, "a"), make_net(tmp_path, "b")
    data = os.urandom(100 * 1024 * 1024)
    blob_id = a.store.blobs.put(data)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        peer_a = await b.connect(a.listen_addrs[0])
        started = time.perf_counter()
        got = await b.fetch_blob(blob_id, [peer_a])
        seconds = time.perf_counter() - started
        print(f"100 MB blob: {seconds:.2f} s, {len(data) / seconds / 1e6:.0f} MB/s")
        assert got == data
        assert b.store.blobs.get(blob_id) == data
        assert b.counters.blob_bytes_in == len(data) and a.counters.blob_bytes_out == len(data)
        nursery.cancel_scope.cancel()


async def test_blob_with_wrong_bytes_is_refused(tmp_path: Path) -> None:
    """A peer serving bytes that do not hash to the id is skipped; an honest one delivers."""
    liar, honest, me = (make_net(tmp_path, n) for n in ("liar", "honest", "me"))
    blob_id = honest.store.blobs.put(b"the real update")
    poison = b"a poisoned update"  # served from the liar's file, piece by piece
    liar.store.blobs.size = lambda h: len(poison)  # type: ignore[method-assign]
    liar.store.blobs.read_piece = lambda h, o, n: poison[o : o + n]  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [liar, honest, me])
        peer_liar = await me.connect(liar.listen_addrs[0])
        peer_honest = await me.connect(honest.listen_addrs[0])
        got = await me.fetch_blob(blob_id, [peer_liar, peer_honest])
        assert got == b"the real update"
        assert me.counters.blob_fetches["error"] == 1 and me.counters.blob_fetches["ok"] == 1
        missing = hashlib.sha256(b"nobody has this").digest()
        with pytest.raises(Exception, match="unavailable"):
            await me.fetch_blob(missing, [peer_honest])
        nursery.cancel_scope.cancel()


async def test_sync_fetches_bounded_consecutive_batches(tmp_path: Path) -> None:
    """fetch_blocks returns consecutive stored blocks from the height asked, bounded, with the tip."""
    a, b = make_net(tmp_path, "a"), make_net(tmp_path, "b")
    for height in range(10):
        a.store.put_block(
            height, hashlib.sha256(b"%d" % height).digest(), b"B%d" % height, b"C%d" % height
        )
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        peer_a = await b.connect(a.listen_addrs[0])
        batch = await b.fetch_blocks(peer_a, 3, max_count=4)
        assert batch.peer_tip == 9
        assert [blk.height for blk in batch.blocks] == [3, 4, 5, 6]
        assert batch.blocks[0].block == b"B3" and batch.blocks[0].commit_cert == b"C3"
        assert (await b.fetch_blocks(peer_a, 10)).blocks == []
        empty = await a.fetch_blocks(await a.connect(b.listen_addrs[0]), 0)
        assert empty.peer_tip is None and empty.blocks == []
        nursery.cancel_scope.cancel()


async def test_restarted_peer_is_redialed_and_gossips_again(tmp_path: Path) -> None:
    """After a bootstrap peer restarts on the same port, the node redials it and gossip resumes."""
    seed, port = os.urandom(32), free_port()
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    first = make_net(tmp_path, "a", seed, listen=listen)
    addr = f"{listen}/p2p/{first.peer_id}"
    b = make_net(tmp_path, "b", bootstrap=[addr])
    inbox = Inbox([b], Topic.CONSENSUS)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        async with trio.open_nursery() as first_nursery:
            await first_nursery.start(first.run)
            await wait_until(lambda: first.peer_id.to_base58() in b.peers())
            first_nursery.cancel_scope.cancel()
        await wait_until(lambda: b.peers() == [])  # noticed the restart
        second = make_net(tmp_path, "a2", seed, listen=listen)
        await nursery.start(second.run)
        await wait_until(lambda: second.peer_id.to_base58() in b.peers(), timeout=20)
        await mesh_ready([second], Topic.CONSENSUS, 1)
        await wait_until(lambda: bool(b.topic_peers(Topic.CONSENSUS)))
        await trio.sleep(1.5)  # one heartbeat to graft: not a sync point, the wait below is

        async def publish_until_delivered() -> None:
            while not inbox.got[0]:
                await second.publish(Topic.CONSENSUS, b"gossip after restart")
                await trio.sleep(0.3)

        with trio.fail_after(15):
            await publish_until_delivered()
        assert inbox.got[0][0] == b"gossip after restart"
        assert b.counters.redials >= 1
        nursery.cancel_scope.cancel()


async def test_peer_missing_from_pubsub_is_repaired(tmp_path: Path) -> None:
    """A peer that silently drops out of the pubsub peer set while connected is re-added."""
    a, b = make_net(tmp_path, "a"), make_net(tmp_path, "b")
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await b.connect(a.listen_addrs[0])
        await wait_until(lambda: b.peer_id in a.pubsub.peers)
        # what an oversized RPC leaves behind: pubsub forgets the peer, TCP stays up
        a.pubsub.peers.pop(b.peer_id)
        a.pubsub.peer_queues.pop(b.peer_id).close()
        a.router.remove_peer(b.peer_id)
        assert b.peer_id.to_base58() in a.peers()
        await wait_until(lambda: b.peer_id in a.pubsub.peers)
        assert a.counters.pubsub_repairs >= 1
        nursery.cancel_scope.cancel()


async def test_sender_record_is_verified_once_not_per_rpc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 messages from a peer cost one check of its signed sender record, not two per RPC."""
    from libp2p.pubsub import utils

    checks: list[tuple[object, object]] = []
    stock_check = utils.maybe_consume_signed_record

    def counting(msg: object, host: object, peer_id: object) -> bool:
        if msg.HasField("senderRecord"):  # type: ignore[attr-defined]
            checks.append((host, peer_id))
        return stock_check(msg, host, peer_id)  # type: ignore[arg-type]

    monkeypatch.setattr(utils, "maybe_consume_signed_record", counting)
    a, b = make_net(tmp_path, "a"), make_net(tmp_path, "b")
    inbox = Inbox([b], Topic.RECEIPTS)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await b.connect(a.listen_addrs[0])
        await mesh_ready([a, b], Topic.RECEIPTS, 1)
        await trio.sleep(1.5)  # one heartbeat to graft: not a sync point, the wait below is
        for i in range(30):
            await a.publish(Topic.RECEIPTS, b"m%02d" % i)
        await wait_until(lambda: len(inbox.got[0]) >= 30)
        nursery.cancel_scope.cancel()
    by_b_of_a = [1 for host, peer in checks if host is b.host and peer == a.peer_id]
    assert len(by_b_of_a) == 1
