"""A raw malicious peer against py-libp2p pubsub: two crashes (docs/libp2p-compat.md), fixed.

1. One malformed RPC frame kills a stock 0.8.1 node (DecodeError in the stream handler); our
   GuardedPubsub drops the frame, counts it, and keeps gossiping.
2. Two concurrent writers on one pubsub stream interleave Yamux frames and the receiver
   cannot parse them; the per-stream write lock of GuardedPubsub.write_msg prevents it.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils import encode_varint_prefixed

from node.home import NodeHome
from node.keys import NodeIdentity
from node.network import NetworkSettings, NodeNetwork, Topic
from node.network.libp2p_compat import pubsub_signing_prefix
from node.store import ChainStore

pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)
ROOT = Path(__file__).resolve().parents[2]
BAD_FRAME = encode_varint_prefixed(b"\xff" * 9)  # a 9-byte frame that is no protobuf RPC
# Under the candidates cap (128 KiB), yet two 64 KiB Yamux frames per RPC: enough for two
# unlocked writers on one stream to interleave their frames.
LARGE_PAYLOAD = 120_000


@pytest.fixture(autouse=True)
def collect_libp2p_garbage() -> Iterator[None]:
    yield
    gc.collect()


def make_net(tmp: Path, name: str) -> NodeNetwork:
    store = ChainStore.open(NodeHome(tmp / name))
    return NodeNetwork(
        NodeIdentity(os.urandom(32)).key_pair(), NetworkSettings(chain_id="test"), store
    )


async def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


def signed_rpc(net: NodeNetwork, topic: str, data: bytes, seqno: int) -> rpc_pb2.RPC:
    """A valid, signed publish RPC, built the way Pubsub.publish builds one."""
    msg = rpc_pb2.Message(
        data=data, topicIDs=[topic], from_id=net.peer_id.to_bytes(), seqno=seqno.to_bytes(8, "big")
    )
    key = net.host.get_private_key()
    msg.signature = key.sign(pubsub_signing_prefix().encode() + msg.SerializeToString())
    msg.key = net.host.get_public_key().serialize()
    return rpc_pb2.RPC(publish=[msg])


async def test_malformed_frame_kills_a_stock_node(tmp_path: Path) -> None:
    """Reproduction: one malformed frame makes an unguarded py-libp2p 0.8.1 process exit."""
    victim = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/integration/stock_pubsub_victim.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    try:
        addr = await trio.to_thread.run_sync(victim.stdout.readline)  # type: ignore[union-attr]
        assert "/tcp/" in addr, victim.stderr.read() if victim.poll() is not None else addr  # type: ignore[union-attr]
        attacker = make_net(tmp_path, "attacker")
        async with trio.open_nursery() as nursery:
            await nursery.start(attacker.run)
            peer = await attacker.connect(addr.strip())
            stream = await attacker.host.new_stream(ID.from_base58(peer), [PROTOCOL_ID_V12])
            await stream.write(BAD_FRAME)
            deadline = time.monotonic() + 20
            while victim.poll() is None and time.monotonic() < deadline:
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        assert victim.poll() is not None, "the stock node survived the malformed frame"
        assert "DecodeError" in victim.stderr.read()  # type: ignore[union-attr]
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()
        victim.stdout.close()  # type: ignore[union-attr]
        victim.stderr.close()  # type: ignore[union-attr]


async def test_guarded_node_drops_malformed_frames_and_keeps_gossiping(tmp_path: Path) -> None:
    """The fix: bad frames are dropped and counted, the attacker is banned after 3, gossip goes on."""
    victim, honest, attacker = (make_net(tmp_path, n) for n in ("victim", "honest", "attacker"))
    got: list[bytes] = []

    async def on_message(data: bytes, origin: str) -> None:
        got.append(data)

    honest.subscribe(Topic.CONSENSUS, on_message)
    async with trio.open_nursery() as nursery:
        for net in (victim, honest, attacker):
            await nursery.start(net.run)
        await honest.connect(victim.listen_addrs[0])
        await attacker.connect(victim.listen_addrs[0])
        for _ in range(3):
            await wait_until(
                lambda: (
                    victim.pubsub.is_banned(attacker.peer_id)
                    or attacker.peer_id.to_base58() in victim.peers()
                )
            )
            if victim.pubsub.is_banned(attacker.peer_id):
                break
            count = victim.counters.malformed_rpc_frames
            stream = await attacker.host.new_stream(victim.peer_id, [PROTOCOL_ID_V11])
            await stream.write(BAD_FRAME)
            await wait_until(lambda c=count: victim.counters.malformed_rpc_frames > c)
        assert victim.counters.malformed_rpc_frames == 3
        assert victim.counters.malformed_by_peer[attacker.peer_id.to_base58()] == 3
        await wait_until(lambda: victim.pubsub.is_banned(attacker.peer_id))
        await wait_until(
            lambda: (
                bool(honest.topic_peers(Topic.CONSENSUS))
                and bool(victim.topic_peers(Topic.CONSENSUS))
            )
        )
        with trio.fail_after(15):
            while not got:
                await victim.publish(Topic.CONSENSUS, b"still alive")
                await trio.sleep(0.3)
        assert got[0] == b"still alive"
        nursery.cancel_scope.cancel()


async def _two_concurrent_writes(
    attacker: NodeNetwork, victim: NodeNetwork, locked: bool, base: int
) -> None:
    topic = Topic.CANDIDATES.wire_name("test")
    stream = await attacker.host.new_stream(victim.peer_id, [PROTOCOL_ID_V11])
    rpcs = [signed_rpc(attacker, topic, bytes([i]) * LARGE_PAYLOAD, base + i) for i in range(2)]

    async def write(rpc: rpc_pb2.RPC) -> None:
        if locked:
            await attacker.pubsub.write_msg(stream, rpc)
        else:
            await stream.write(encode_varint_prefixed(rpc.SerializeToString()))

    async with trio.open_nursery() as nursery:
        for rpc in rpcs:
            nursery.start_soon(write, rpc)


async def test_concurrent_writes_interleave_without_the_lock(tmp_path: Path) -> None:
    """Reproduction and fix: unlocked concurrent large writes corrupt the frames; locked ones arrive."""
    victim, attacker = make_net(tmp_path, "victim"), make_net(tmp_path, "attacker")
    victim.pubsub.malformed_strikes = 100  # keep the attacker unbanned across both halves
    got: list[bytes] = []

    async def on_candidate(data: bytes, origin: str) -> None:
        got.append(data)

    victim.subscribe(Topic.CANDIDATES, on_candidate)
    async with trio.open_nursery() as nursery:
        for net in (victim, attacker):
            await nursery.start(net.run)
        await attacker.connect(victim.listen_addrs[0])
        await wait_until(lambda: attacker.peer_id in victim.pubsub.peers)

        await _two_concurrent_writes(attacker, victim, locked=False, base=1)
        await wait_until(lambda: victim.counters.malformed_rpc_frames >= 1)

        before = victim.counters.malformed_rpc_frames
        await wait_until(lambda: attacker.peer_id.to_base58() in victim.peers())
        await _two_concurrent_writes(attacker, victim, locked=True, base=10)
        await wait_until(lambda: len(got) >= 2)
        assert sorted(d[0] for d in got[-2:]) == [0, 1] and all(
            len(d) == LARGE_PAYLOAD for d in got
        )
        assert victim.counters.malformed_rpc_frames == before
        nursery.cancel_scope.cancel()
