"""Peers whose identity keys are of a type bcfl does not load (RSA, secp256k1), on real libp2p
hosts on 127.0.0.1 (node/libp2p_extras.py).

py-libp2p parses those keys with packages a daemon stands in, so the parse fails where a
malformed key would fail. These tests show that it fails cleanly: the connection is refused and
counted in both directions, a pubsub message carrying such a key (or a garbage key, which no
build parses) is dropped and counted against its forwarder, and the node keeps serving its
members. The attacker's keys are made with `cryptography` (the library's own
key classes for these types need the stood-in packages)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from libp2p.crypto.keys import KeyPair, KeyType, PrivateKey, PublicKey
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.home import NodeHome  # noqa: E402
from node.keys import NodeIdentity  # noqa: E402
from node.network import NetworkSettings, NodeNetwork, Topic, libp2p_compat  # noqa: E402
from node.network.guarded_pubsub import GuardedPubsub  # noqa: E402
from node.network.libp2p_compat import CompatPubsub  # noqa: E402
from node.store import ChainStore  # noqa: E402
from tests.integration.test_libp2p_network import (  # noqa: E402
    Inbox,
    collect_libp2p_garbage,  # noqa: F401  (the same autouse fixture)
    make_net,
    mesh_ready,
    pytestmark,  # noqa: F401  (the same warning filter: the library's leaked sockets)
    start_all,
    wait_until,
)


class _Public(PublicKey):
    def __init__(self, key_type: KeyType, der_or_point: bytes) -> None:
        self._type = key_type
        self._bytes = der_or_point

    def to_bytes(self) -> bytes:
        return self._bytes

    def get_type(self) -> KeyType:
        return self._type

    def verify(self, data: bytes, signature: bytes) -> bool:  # never asked of the attacker
        raise NotImplementedError


class RSAKey(PrivateKey):
    """A libp2p RSA identity (PKIX DER public key, PKCS#1 v1.5 SHA-256 signatures)."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def get_public_key(self) -> PublicKey:
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _Public(KeyType.RSA, der)

    def to_bytes(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    def get_type(self) -> KeyType:
        return KeyType.RSA


class Secp256k1Key(PrivateKey):
    """A libp2p secp256k1 identity (compressed point, DER ECDSA SHA-256 signatures)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256K1())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def get_public_key(self) -> PublicKey:
        point = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        return _Public(KeyType.Secp256k1, point)

    def to_bytes(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")

    def get_type(self) -> KeyType:
        return KeyType.Secp256k1


def foreign_net(tmp: Path, private: PrivateKey) -> NodeNetwork:
    store = ChainStore.open(NodeHome(tmp / "foreign"))
    pair = KeyPair(private, private.get_public_key())
    return NodeNetwork(pair, NetworkSettings(chain_id="test", transport="gossip"), store)


@pytest.mark.parametrize("make_key", [RSAKey, Secp256k1Key], ids=["rsa", "secp256k1"])
async def test_a_peer_with_an_unloaded_key_type_is_refused_and_counted(
    tmp_path: Path, make_key: type[PrivateKey]
) -> None:
    seeds = [os.urandom(32) for _ in range(2)]
    foreign = foreign_net(tmp_path, make_key())
    foreign_id = foreign.peer_id.to_base58()
    allowed = {NodeIdentity(s).peer_id for s in seeds} | {foreign_id}  # even when allowed
    a = make_net(tmp_path, "a", seeds[0], allowed_peers=allowed)
    b = make_net(tmp_path, "b", seeds[1], allowed_peers=allowed)
    inbox = Inbox([a, b], Topic.CONSENSUS)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b, foreign])
        with pytest.raises(Exception):  # noqa: B017 - the swarm wraps the refusal several ways
            await foreign.connect(a.listen_addrs[0])
        await wait_until(lambda: a.counters.refused_unsupported_key >= 1)  # the dial retries
        inbound = a.counters.refused_unsupported_key
        with pytest.raises(Exception):  # noqa: B017
            await a.connect(f"{foreign.listen_addrs[0].split('/p2p/')[0]}/p2p/{foreign_id}")
        assert a.counters.refused_unsupported_key > inbound
        assert a.counters.refused_connections == 0  # not an allow-list refusal
        assert foreign_id not in {p.to_base58() for p in a.host.get_connected_peers()}
        # The node still serves its members.
        await b.connect(a.listen_addrs[0])
        await mesh_ready([a, b], Topic.CONSENSUS, 1)
        await b.publish(Topic.CONSENSUS, b"after")
        await wait_until(lambda: inbox.got[0] == [b"after"])
        nursery.cancel_scope.cancel()


def _rsa_authored(b: NodeNetwork, garbage_key: bool) -> rpc_pb2.Message:
    """A consensus message authored by an RSA peer id, signed, with its key attached (or, with
    `garbage_key`, an RSA-typed key of garbage bytes, which no py-libp2p build can parse)."""
    author = RSAKey()
    public = author.get_public_key()
    msg = rpc_pb2.Message(
        data=b"from an rsa author",
        topicIDs=[Topic.CONSENSUS.wire_name("test")],
        from_id=ID.from_pubkey(public).to_bytes(),
        seqno=libp2p_compat.next_seqno(b.pubsub),
    )
    prefix = libp2p_compat.pubsub_signing_prefix().encode()
    msg.signature = author.sign(prefix + msg.SerializeToString())
    msg.key = (
        _Public(KeyType.RSA, b"\x30" + os.urandom(40)) if garbage_key else public
    ).serialize()
    return msg


@pytest.mark.parametrize("garbage_key", [False, True], ids=["rsa-key", "garbage-rsa-key"])
async def test_a_pubsub_message_whose_key_cannot_be_parsed_is_dropped(
    tmp_path: Path, garbage_key: bool
) -> None:
    """A member relays a message whose attached key the receiver's signature check cannot
    parse: the receiver drops that message only, counts it against the member, and goes on."""
    a = make_net(tmp_path, "a")
    b = make_net(tmp_path, "b")
    inbox = Inbox([a, b], Topic.CONSENSUS)
    async with trio.open_nursery() as nursery:
        await start_all(nursery, [a, b])
        await b.connect(a.listen_addrs[0])
        await mesh_ready([a, b], Topic.CONSENSUS, 1)
        await b.router.publish(b.peer_id, _rsa_authored(b, garbage_key))
        await b.publish(Topic.CONSENSUS, b"after")  # ordered after it on the link
        await wait_until(lambda: inbox.got[0] == [b"after"])
        assert a.counters.malformed_rpc_frames == 1
        assert a.counters.malformed_by_peer[b.peer_id.to_base58()] == 1
        await a.publish(Topic.CONSENSUS, b"back")
        await wait_until(lambda: inbox.got[1] == [b"back"])
        nursery.cancel_scope.cancel()


async def test_without_the_push_guard_such_a_message_stops_the_receiving_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack the guard answers, with the stock `push_msg`: a garbage key (parseable by no
    py-libp2p build, stand-ins or not) ends the receiver's pubsub service and its node."""
    monkeypatch.setattr(GuardedPubsub, "push_msg", CompatPubsub.push_msg)
    a = make_net(tmp_path, "a")
    b = make_net(tmp_path, "b")
    with pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            await start_all(nursery, [a, b])
            await b.connect(a.listen_addrs[0])
            await mesh_ready([a, b], Topic.CONSENSUS, 1)
            await b.router.publish(b.peer_id, _rsa_authored(b, garbage_key=True))
            with trio.fail_after(30):  # the receiver's crash ends it long before
                await trio.sleep_forever()
    assert raised.value.subgroup(ValueError) is not None
