"""The direct transport (node/network/direct.py) on real libp2p hosts on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import struct
import sys
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.network import BlobUnavailableError, NodeNetwork, Topic  # noqa: E402
from node.network.direct import BLOB_KIND, DIRECT_PROTOCOL, HEADER, KIND_OF  # noqa: E402
from tests.integration.test_libp2p_network import (  # noqa: E402
    Inbox,
    collect_libp2p_garbage,  # noqa: F401  (the same autouse fixture)
    make_net,
    pytestmark,  # noqa: F401  (the same warning filter: the library's leaked sockets)
    start_all,
    wait_until,
)


def direct_net(tmp: Path, name: str) -> NodeNetwork:
    return make_net(tmp, name, transport="direct")


async def connect_all(nets: list[NodeNetwork]) -> None:
    for i, a in enumerate(nets):
        for b in nets[i + 1 :]:
            await b.connect(a.listen_addrs[0])
    await wait_until(lambda: all(len(n.peers()) == len(nets) - 1 for n in nets))


async def test_each_message_reaches_every_peer_once(tmp_path: Path) -> None:
    """In a full mesh of four, 30 messages from each node reach each other node exactly once,
    none through GossipSub; a re-send is delivered again (the core decides what it is worth)."""
    nets = [direct_net(tmp_path, f"n{i}") for i in range(4)]
    inbox = Inbox(nets, Topic.CONSENSUS)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, nets)
        await connect_all(nets)
        for i, net in enumerate(nets):
            for k in range(30):
                await net.publish(Topic.CONSENSUS, b"%d-%03d" % (i, k))
        await wait_until(lambda: all(len(got) >= 90 for got in inbox.got))
        for i, got in enumerate(inbox.got):
            expected = {b"%d-%03d" % (j, k) for j in range(4) if j != i for k in range(30)}
            assert sorted(got) == sorted(expected)  # each once: no relay, no duplicate
            assert nets[i].counters.messages_in["consensus"] == 90
            assert nets[i].counters.messages_out["consensus"] == 30
        await nets[0].publish(Topic.CONSENSUS, b"0-000")  # a re-send of the same bytes
        await wait_until(lambda: all(len(got) == 91 for got in inbox.got[1:]))
        assert all(got[-1] == b"0-000" for got in inbox.got[1:])
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("transport", ["direct", "gossip"])
async def test_direct_messages_are_not_relayed_gossip_ones_are(
    tmp_path: Path, transport: str
) -> None:
    """On a line a - b - c the direct transport reaches b only (no relay: a consortium is a full
    mesh); the gossip transport, on the same line, reaches c through b."""
    nets = [make_net(tmp_path, f"n{i}", transport=transport) for i in range(3)]
    inbox = Inbox(nets, Topic.RECEIPTS)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, nets)
        await nets[1].connect(nets[0].listen_addrs[0])
        await nets[2].connect(nets[1].listen_addrs[0])
        if transport == "gossip":  # b must have grafted both into its mesh to relay
            wire = Topic.RECEIPTS.wire_name("test")
            await wait_until(lambda: len(nets[1].router.mesh.get(wire, ())) == 2)
            await wait_until(lambda: all(len(n.router.mesh.get(wire, ())) == 1 for n in nets[::2]))
        for k in range(20):
            await nets[0].publish(Topic.RECEIPTS, b"m%02d" % k)
        await nets[0].publish(Topic.RECEIPTS, b"end")
        await wait_until(lambda: b"end" in inbox.got[1])
        if transport == "gossip":
            await wait_until(lambda: b"end" in inbox.got[2])
        else:
            # b has delivered all 21 in order; had c been sent any, they would precede "end"
            assert len(inbox.got[1]) == 21
            assert inbox.got[2] == []
            assert nets[1].counters.messages_out["receipts"] == 0  # b forwarded nothing
        nursery.cancel_scope.cancel()


async def test_pushed_blob_is_used_without_a_fetch(tmp_path: Path) -> None:
    """A blob pushed ahead of its receipt is in b's store after a fetch that may ask no peer,
    and the fetch hands back its bytes (the caller need not read the file); once stored, a
    fetch returns None (read it from the store); `fetch_blob` of a pushed blob returns its
    bytes and stores them; a pushed blob whose bytes do not hash to its name is counted and
    never stored."""
    a, b = direct_net(tmp_path, "a"), direct_net(tmp_path, "b")
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await connect_all([a, b])
        data = os.urandom(4000)
        name = hashlib.sha256(data).digest()
        assert a.push_blob(name, data)
        await wait_until(lambda: b.counters.blob_pushes["ok"] == 1)
        pushed = await b.fetch_blob_to_store(name, from_peers=[])  # no peer to ask: the push
        assert pushed == data and b.store.blobs.get(name) == data
        assert await b.fetch_blob_to_store(name, from_peers=[]) is None  # in the store now
        assert b.counters.blob_pushes["used"] == 1
        assert b.counters.blob_fetches["ok"] == 0
        more = os.urandom(3000)
        more_name = hashlib.sha256(more).digest()
        assert a.push_blob(more_name, more)
        await wait_until(lambda: b.counters.blob_pushes["ok"] == 2)
        assert await b.fetch_blob(more_name, from_peers=[]) == more  # the pushed bytes
        assert b.store.blobs.get(more_name) == more and b.counters.blob_pushes["used"] == 2

        lie = hashlib.sha256(b"something else").digest()
        a.direct.send_blob(lie, data, [b.peer_id])
        await wait_until(lambda: b.counters.blob_pushes["bad-hash"] == 1)
        with pytest.raises(BlobUnavailableError):
            await b.fetch_blob_to_store(lie, from_peers=[])
        assert b.store.blobs.size(lie) is None
        assert not a.push_blob(name, bytes(a.settings.max_blob_push + 1))  # too big: fetched
        nursery.cancel_scope.cancel()


async def test_a_prefetched_update_is_not_read_back_from_the_store(tmp_path: Path) -> None:
    """The learning worker prefetches an update as its receipt arrives; the aggregation that
    asks for it later gets the verified bytes from memory, without reading the store. One
    that was stored without a prefetch is read from the store (and checked) as before."""
    from node.chain import Chain
    from node.services import learning_worker as lw
    from telemetry.metrics import NodeMetrics

    a, b = direct_net(tmp_path, "a"), direct_net(tmp_path, "b")
    worker = lw.LearningWorker(
        app=None,
        chain=Chain(b.store),
        net=b,
        genesis=None,  # type: ignore[arg-type]  (only read for a blob's author)
        metrics=NodeMetrics(node_id="b", chain_id="c", version="test"),
        clock=trio.current_time,
        answer=lambda call: None,
    )
    reads: list[bytes] = []
    real_get = b.store.blobs.get

    def counting_get(name: bytes, *args: object, **kwargs: object) -> bytes:
        reads.append(bytes(name))
        return real_get(name, *args, **kwargs)  # type: ignore[arg-type]

    b.store.blobs.get = counting_get  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await connect_all([a, b])
        await nursery.start(worker.run)
        data, other = os.urandom(4000), os.urandom(3000)
        name, other_name = hashlib.sha256(data).digest(), hashlib.sha256(other).digest()
        assert a.push_blob(name, data) and a.push_blob(other_name, other)
        await wait_until(lambda: b.counters.blob_pushes["ok"] == 2)
        worker.prefetch(name, None)
        await wait_until(lambda: name in worker._fresh)
        assert await b.fetch_blob_to_store(other_name, from_peers=[]) == other  # stored only
        reads.clear()
        source = await worker.update_file(name, None)
        assert source is not None and bytes(source.read(0, source.size())) == data
        assert reads == []
        source = await worker.update_file(other_name, None)
        assert source is not None and bytes(source.read(0, source.size())) == other
        assert reads == [other_name]
        nursery.cancel_scope.cancel()


def test_fresh_updates_stay_within_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past FRESH_UPDATES entries or FRESH_UPDATE_BYTES, the oldest fresh update goes first."""
    from learning.serialize import MemorySource
    from node.services import learning_worker as lw

    monkeypatch.setattr(lw, "FRESH_UPDATES", 3)
    monkeypatch.setattr(lw, "FRESH_UPDATE_BYTES", 250)
    worker = lw.LearningWorker.__new__(lw.LearningWorker)
    worker._fresh, worker._fresh_bytes = lw.OrderedDict(), 0
    for i in range(5):
        worker._keep_fresh(bytes([i]) * 32, MemorySource(bytes(60)))
    assert list(worker._fresh) == [bytes([i]) * 32 for i in (2, 3, 4)]
    worker._keep_fresh(b"\xff" * 32, MemorySource(bytes(200)))
    assert len(worker._fresh) == 1 and worker._fresh_bytes == 200


@pytest.mark.parametrize(
    "frame",
    [
        HEADER.pack(0x42, 4) + b"junk",  # an unknown kind
        HEADER.pack(KIND_OF[Topic.CONSENSUS], 1 << 30),  # a length far above the cap
        HEADER.pack(BLOB_KIND, 8) + b"shortblb",  # a pushed blob shorter than its hash
        struct.pack(">B", 1) + b"\x00",  # a header cut short, then the stream ends
    ],
    ids=["unknown-kind", "over-cap", "short-blob", "cut-header"],
)
async def test_malformed_frame_is_counted_and_the_node_goes_on(
    tmp_path: Path, frame: bytes
) -> None:
    """A frame that breaks the framing resets that stream and is counted; the node keeps
    serving, and the peer's next stream delivers again."""
    a, b = direct_net(tmp_path, "a"), direct_net(tmp_path, "b")
    inbox = Inbox([a, b], Topic.CONSENSUS)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await connect_all([a, b])
        stream = await a.host.new_stream(b.peer_id, [DIRECT_PROTOCOL])
        await stream.write(frame)
        await stream.close()
        await wait_until(lambda: b.counters.rejected[("consensus", "malformed-rpc")] == 1)
        await a.publish(Topic.CONSENSUS, b"still here")
        await wait_until(lambda: inbox.got[1] == [b"still here"])
        nursery.cancel_scope.cancel()


async def test_a_frame_left_unfinished_times_out_and_an_idle_stream_does_not(
    tmp_path: Path,
) -> None:
    """A peer that starts a frame and stops has that stream reset and counted once timeout_s
    has passed, not before; a stream that is quiet between frames for longer than that stays
    open and delivers its next frame (the time has to pass: that is what is tested)."""
    a, b = direct_net(tmp_path, "a"), direct_net(tmp_path, "b")
    inbox = Inbox([a, b], Topic.CONSENSUS)
    b.direct.timeout_s = 0.5
    frame = HEADER.pack(KIND_OF[Topic.CONSENSUS], 5)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await connect_all([a, b])
        stalled = await a.host.new_stream(b.peer_id, [DIRECT_PROTOCOL])
        began = trio.current_time()
        await stalled.write(frame + b"on")
        await wait_until(lambda: b.counters.rejected[("consensus", "malformed-rpc")] == 1)
        assert trio.current_time() - began >= 0.5
        idle = await a.host.new_stream(b.peer_id, [DIRECT_PROTOCOL])
        await idle.write(frame + b"first")
        await wait_until(lambda: inbox.got[1] == [b"first"])
        await trio.sleep(1.5)  # three timeouts of silence between frames
        await idle.write(frame + b"later")
        await wait_until(lambda: inbox.got[1] == [b"first", b"later"])
        assert b.counters.rejected[("consensus", "malformed-rpc")] == 1
        nursery.cancel_scope.cancel()
