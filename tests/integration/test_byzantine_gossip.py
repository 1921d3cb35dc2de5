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

from consensus.codec import block_hash, decode_message, encode_message
from consensus.crypto import BlsSigner, BlsVerifier
from consensus.genesis import make_genesis
from consensus.signing import proposal_bytes, vote_bytes
from consensus.types import (
    Block,
    Genesis,
    Hash,
    Header,
    Height,
    Proposal,
    Round,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet
from node.byzantine import GarbageSpammer
from node.gossip_validation import GossipValidator
from node.home import NodeHome
from node.keys import NodeIdentity
from node.network import DEFAULT_SIZE_CAPS, NetworkSettings, NodeNetwork, Topic
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


def network(
    tmp: Path, name: str, member: Member, genesis: Genesis, caps: dict[Topic, int] | None = None
) -> NodeNetwork:
    settings = NetworkSettings(
        chain_id=CHAIN,
        allowed_peers={m.peer_id for m in genesis.validators},
        size_caps=dict(caps or DEFAULT_SIZE_CAPS),
    )
    return NodeNetwork(member.identity.key_pair(), settings, ChainStore.open(NodeHome(tmp / name)))


def validate(net: NodeNetwork, genesis: Genesis) -> GossipValidator:
    gv = GossipValidator(
        genesis,
        BlsVerifier(),
        lambda: HEIGHT,
        size_caps=net.settings.size_caps,
        local_peer_id=str(net.peer_id),
    )
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
                return len(reasons) >= 6 and frames >= 3 and sum(spammer.sent.values()) > 120

            await wait_until(flooded, timeout=60)  # a deadline, not a wait: loaded CI machines
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


# Stock caps keep gossip under 128 KiB. This test raises the consensus cap (of its own nodes and
# validators only) so that each ~200 KB proposal spans four 64 KiB Yamux frames and most of a
# stream's 256 KiB send window: the case where two unlocked writers on one stream would
# interleave frames (docs/libp2p-compat.md, "Yamux locks each frame, not each write").
LARGE_CAPS = {**DEFAULT_SIZE_CAPS, Topic.CONSENSUS: 256 * 1024}
LARGE_SIZE = 200_000


def large_proposal(group: list[Member], vs: ValidatorSet, round_: int) -> bytes:
    """A ~`LARGE_SIZE`-byte proposal (a long carry-over reason), signed by the round's proposer."""
    zero = Hash(bytes(32))
    proposer = vs.proposer_for(Height(HEIGHT), Round(round_))
    header = Header(CHAIN, Height(HEIGHT), Round(round_), 1, zero, proposer, zero, zero, zero, zero)
    block = Block(header, (), (), "", None, (), "x" * LARGE_SIZE, None, ())
    proposal = Proposal(Height(HEIGHT), Round(round_), block, Round(-1), proposer)
    signature = group[proposer].signer.sign(proposal_bytes(CHAIN, proposal, block_hash(block)))
    return encode_message(dataclasses.replace(proposal, signature=signature))


async def test_node_joining_during_large_messages_is_not_corrupted(tmp_path: Path) -> None:
    """A node joining while ~200 KB proposals are gossiped receives only messages that decode."""
    group = members(3)
    genesis = genesis_of(group)
    vs = ValidatorSet(genesis.validators)
    nets = [network(tmp_path, f"n{i}", group[i], genesis, LARGE_CAPS) for i in range(3)]
    validators = [validate(net, genesis) for net in nets]
    got: list[list[bytes]] = [[] for _ in nets]
    for i, net in enumerate(nets):

        async def on_proposal(data: bytes, origin: str, i: int = i) -> None:
            got[i].append(data)

        net.subscribe(Topic.CONSENSUS, on_proposal)
    # 30 proposals by each of the two first nodes, each its own (the rounds it proposes in).
    own_rounds = [
        [r for r in range(200) if vs.proposer_for(Height(HEIGHT), Round(r)) == i][:30]
        for i in range(2)
    ]
    payloads = {r: large_proposal(group, vs, r) for rounds in own_rounds for r in rounds}
    joiner = nets[2]

    async def publish(i: int) -> None:
        for r in own_rounds[i]:
            await nets[i].publish(Topic.CONSENSUS, payloads[r])
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        for net in nets:
            await nursery.start(net.run)
        await nets[1].connect(nets[0].listen_addrs[0])
        await wait_until(lambda: len(nets[0].topic_peers(Topic.CONSENSUS)) == 1)
        async with trio.open_nursery() as publishers:
            publishers.start_soon(publish, 0)
            publishers.start_soon(publish, 1)
            await wait_until(lambda: len(got[0]) + len(got[1]) >= 6)
            await joiner.connect(nets[0].listen_addrs[0])
            await joiner.connect(nets[1].listen_addrs[0])
            await wait_until(lambda: len(got[2]) >= 10, timeout=20)
        nursery.cancel_scope.cancel()

    print(f"\njoiner received {len(got[2])} proposals of ~200 KB")
    sent = set(payloads.values())
    for data in got[2]:
        assert data in sent
        decoded = decode_message(data, 1 << 20)
        assert isinstance(decoded, Proposal)
        assert len(decoded.block.carry_over_reason) == LARGE_SIZE
        assert validators[2].decoded(Topic.CONSENSUS, data) is not None
    for net in nets:
        assert net.counters.malformed_rpc_frames == 0
        assert not [r for (_, r) in net.counters.rejected if r in ("undecodable", "schema")]
