"""Garbage at the gossip edge: honest nodes with GossipValidators against a GarbageSpammer.

Real libp2p (Noise + Yamux + GossipSub) on 127.0.0.1 in one trio process, real BLS keys, a
genesis from `consensus.genesis.make_genesis` (issue 4, `--byzantine garbage:1`).
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio

from consensus.codec import block_hash, encode_message
from consensus.crypto import BlsSigner, BlsVerifier
from consensus.genesis import make_genesis
from consensus.signing import vote_bytes, vote_sign_bytes
from consensus.types import (
    Block,
    CommitCertificate,
    Genesis,
    Hash,
    Header,
    Height,
    Round,
    ValidatorIndex,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet
from node.byzantine import GarbageSpammer
from node.gossip_validation import GossipValidator, decode_committed_block, encode_committed_block
from node.home import NodeHome
from node.keys import NodeIdentity
from node.network import NetworkSettings, NodeNetwork, Topic
from node.store import ChainStore
from telemetry.labels import GOSSIP_REJECT_REASONS

pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)
CHAIN = "byz-chain"
HEIGHT = 1


@pytest.fixture(autouse=True)
def collect_libp2p_garbage() -> Iterator[None]:
    """Collect the library's leaked sockets inside this module, under its warning filter."""
    yield
    gc.collect()


@dataclasses.dataclass
class Member:
    signer: BlsSigner
    identity: NodeIdentity


def members(n: int) -> list[Member]:
    return [Member(BlsSigner(os.urandom(32)), NodeIdentity(os.urandom(32))) for _ in range(n)]


def genesis_of(group: list[Member]) -> Genesis:
    peer_ids = [str(m.identity.peer_id) for m in group]
    return make_genesis(CHAIN, [m.signer for m in group], peer_ids=peer_ids)


def network(tmp: Path, name: str, member: Member, genesis: Genesis) -> NodeNetwork:
    settings = NetworkSettings(
        chain_id=CHAIN, allowed_peers={m.peer_id for m in genesis.validators}
    )
    return NodeNetwork(member.identity.key_pair(), settings, ChainStore.open(NodeHome(tmp / name)))


def validate(net: NodeNetwork, genesis: Genesis) -> GossipValidator:
    gv = GossipValidator(genesis, BlsVerifier(), lambda: HEIGHT, local_peer_id=str(net.peer_id))
    gv.install(net)
    return gv


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


def signed_vote(member: Member, index: int, round_: int) -> bytes:
    vote = Vote(VoteType.PREVOTE, Height(HEIGHT), Round(round_), Hash(b"\x01" * 32), index)  # type: ignore[arg-type]
    return encode_message(
        dataclasses.replace(vote, signature=member.signer.sign(vote_bytes(CHAIN, vote)))
    )


class Inbox:
    """Decoded votes per honest node, and every delivered message's decodability."""

    def __init__(self, nets: list[NodeNetwork], validators: list[GossipValidator]) -> None:
        self.votes: list[set[tuple[int, int]]] = [set() for _ in nets]
        self.undecoded = 0
        for i, (net, gv) in enumerate(zip(nets, validators, strict=True)):
            for topic in Topic:
                net.subscribe(topic, self._handler(i, topic, gv))

    def _handler(
        self, i: int, topic: Topic, gv: GossipValidator
    ) -> Callable[[bytes, str], Awaitable[None]]:
        async def handle(data: bytes, origin: str) -> None:
            message = gv.decoded(topic, data)
            if message is None:
                self.undecoded += 1
            elif isinstance(message, Vote):
                self.votes[i].add((message.validator, message.round))

        return handle


async def test_honest_nodes_survive_garbage_and_keep_gossiping(tmp_path: Path) -> None:
    """Under a garbage flood, 3 honest nodes reject by reason, keep exchanging votes, stay linked."""
    group = members(4)
    genesis = genesis_of(group)
    honest = [network(tmp_path, f"h{i}", group[i], genesis) for i in range(3)]
    evil = network(tmp_path, "evil", group[3], genesis)
    validators = [validate(net, genesis) for net in honest]
    inbox = Inbox(honest, validators)
    spammer = GarbageSpammer(evil, CHAIN, 3, rate=150, signer=group[3].signer, seed=7)
    rounds = Counter[int]()

    async def chatter(i: int) -> None:
        while True:
            rounds[i] += 1
            await honest[i].publish(Topic.CONSENSUS, signed_vote(group[i], i, rounds[i]))
            await trio.sleep(0.1)

    def heard_from_all_honest(after: dict[int, int]) -> bool:
        return all(
            any(r > after[j] for v, r in inbox.votes[i] if v == j)
            for i in range(3)
            for j in range(3)
            if i != j
        )

    async with trio.open_nursery() as nursery:
        for net in (*honest, evil):
            await nursery.start(net.run)
        for net in (*honest[1:], evil):
            await net.connect(honest[0].listen_addrs[0])
        await honest[2].connect(honest[1].listen_addrs[0])
        for net in honest[1:]:
            await evil.connect(net.listen_addrs[0])
        await wait_until(lambda: all(len(n.topic_peers(Topic.CONSENSUS)) == 3 for n in honest))
        for i in range(3):
            nursery.start_soon(chatter, i)

        async with trio.open_nursery() as spam:
            spam.start_soon(spammer.run)

            def flooded() -> bool:
                reasons = {r for n in honest for (_, r), c in n.counters.rejected.items() if c}
                frames = sum(n.counters.malformed_rpc_frames for n in honest)
                return len(reasons) >= 6 and frames >= 3 and sum(spammer.sent.values()) > 150

            await wait_until(flooded, timeout=25)
            during = dict(rounds)
            await wait_until(lambda: heard_from_all_honest({j: 0 for j in range(3)}))
            spam.cancel_scope.cancel()
        after = dict(rounds)
        await wait_until(lambda: heard_from_all_honest(after), timeout=10)
        honest_ids = {str(n.peer_id) for n in honest}
        for net in honest:
            assert len(honest_ids & set(net.pubsub_peers())) == 2
        nursery.cancel_scope.cancel()

    rejected = Counter[tuple[str, str]]()
    for net in honest:
        rejected.update(net.counters.rejected)
    by_reason = Counter[str]()
    for (_, reason), count in rejected.items():
        by_reason[reason] += count
    frames = [n.counters.malformed_rpc_frames for n in honest]
    print(f"\nspammer sent {dict(spammer.sent)}")
    print(f"honest rejections by reason {dict(by_reason)}; malformed RPC frames {frames}")
    assert "validator_error" not in by_reason
    assert set(by_reason) - {"rate_limited"} <= set(GOSSIP_REJECT_REASONS)
    assert {"undecodable", "schema", "bad-signature", "unknown-signer", "height-window"} <= set(
        by_reason
    )
    assert by_reason["oversized"] > 0 and sum(frames) >= 3
    assert inbox.undecoded == 0
    assert min(during.values()) >= 1


def committed_block(group: list[Member], vs: ValidatorSet, time_ms: int, size: int) -> bytes:
    """A ~`size`-byte block (a long carry-over reason) with a valid commit certificate."""
    zero = Hash(bytes(32))
    header = Header(
        CHAIN, Height(HEIGHT), Round(0), time_ms, zero, ValidatorIndex(0), zero, zero, zero, zero
    )
    block = Block(header, (), (), "", None, (), "x" * size, None, ())
    bh = block_hash(block)
    message = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, Height(HEIGHT), Round(0), bh)
    aggregate = BlsVerifier().aggregate([m.signer.sign(message) for m in group])
    cert = CommitCertificate(
        Height(HEIGHT), Round(0), bh, vs.bitfield(range(len(group))), aggregate
    )
    return encode_committed_block(block, cert)


async def test_node_joining_during_large_messages_is_not_corrupted(tmp_path: Path) -> None:
    """A node joining while ~200 KB blocks are gossiped receives only messages that decode."""
    group = members(3)
    genesis = genesis_of(group)
    vs = ValidatorSet(genesis.validators)
    nets = [network(tmp_path, f"n{i}", group[i], genesis) for i in range(3)]
    validators = [validate(net, genesis) for net in nets]
    got: list[list[bytes]] = [[] for _ in nets]
    for i, net in enumerate(nets):

        async def on_block(data: bytes, origin: str, i: int = i) -> None:
            got[i].append(data)

        net.subscribe(Topic.BLOCKS, on_block)
    payloads = [committed_block(group, vs, t, 200_000) for t in range(1, 61)]
    joiner = nets[2]

    async def publish(i: int) -> None:
        for k in range(i, len(payloads), 2):
            await nets[i].publish(Topic.BLOCKS, payloads[k])
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        for net in nets:
            await nursery.start(net.run)
        await nets[1].connect(nets[0].listen_addrs[0])
        await wait_until(lambda: len(nets[0].topic_peers(Topic.BLOCKS)) == 1)
        async with trio.open_nursery() as publishers:
            publishers.start_soon(publish, 0)
            publishers.start_soon(publish, 1)
            await wait_until(lambda: len(got[0]) + len(got[1]) >= 6)
            await joiner.connect(nets[0].listen_addrs[0])
            await joiner.connect(nets[1].listen_addrs[0])
            await wait_until(lambda: len(got[2]) >= 10, timeout=20)
        nursery.cancel_scope.cancel()

    print(f"\njoiner received {len(got[2])} blocks of ~200 KB")
    for data in got[2]:
        decoded = decode_committed_block(data, 1 << 20)
        assert len(decoded.block.carry_over_reason) == 200_000
        assert validators[2].decoded(Topic.BLOCKS, data) is not None
    for net in nets:
        assert net.counters.malformed_rpc_frames == 0
        assert not [r for (_, r) in net.counters.rejected if r in ("undecodable", "schema")]
