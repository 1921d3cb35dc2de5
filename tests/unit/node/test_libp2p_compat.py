"""Contract of `node.network.libp2p_compat` with the installed py-libp2p.

One test per entry of `PRIVATE_NAMES` asserts, directly on the library, that the name exists
with the kind (and parameters) we rely on and that the library still looks it up where our
override or per-instance rebinding needs it. Then: a missing or changed name makes applying
the patches fail loudly, the version pin is enforced, and the patches stay per instance.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.abc import IHost
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerstore import env_to_send_in_RPC
from libp2p.pubsub import gossipsub as gossipsub_module
from libp2p.pubsub import pubsub as pubsub_module
from libp2p.pubsub import utils as pubsub_utils
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import PriorityQueue, RpcQueue
from libp2p.pubsub.score import PeerScorer
from libp2p.transport.exceptions import SecurityUpgradeFailure
from libp2p.transport.upgrader import TransportUpgrader

from node.keys import NodeIdentity
from node.network import libp2p_compat as compat
from node.network.guarded_pubsub import GuardedPubsub
from node.network.host import PeerGate, build_host
from node.network.libp2p_compat import CompatPubsub, LibP2PCompatError, LibP2PVersionError

ROOT = Path(__file__).resolve().parents[3]
ENTRIES = {entry.key: entry for entry in compat.PRIVATE_NAMES}
CONTRACTS: dict[str, Callable[..., Any]] = {}


def contract(key: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a test as the contract test of table entry `key`."""
    assert key in ENTRIES, f"{key} is not an entry of PRIVATE_NAMES"

    def mark(test: Callable[..., Any]) -> Callable[..., Any]:
        assert key not in CONTRACTS, f"two contract tests for {key}"
        CONTRACTS[key] = test
        return test

    return mark


def params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def looks_up(function: Any, name: str) -> bool:
    return name in compat.code_names(function)


def make_host() -> IHost:
    return build_host(
        NodeIdentity(os.urandom(32)).key_pair(), "/ip4/127.0.0.1/tcp/0", PeerGate(None, print)
    )


def make_router() -> GossipSub:
    return GossipSub([PROTOCOL_ID_V12], 6, 4, 12, heartbeat_interval=1)


@pytest.fixture
def host() -> Iterator[IHost]:
    yield make_host()


@pytest.fixture
def stock(host: IHost) -> Pubsub:
    """A stock py-libp2p Pubsub (not started)."""
    return Pubsub(host, make_router())


@pytest.fixture
def ours() -> CompatPubsub:
    """A CompatPubsub on its own host and router (not started)."""
    return CompatPubsub(make_host(), make_router(), outbound_queue_size=1024)


# -- one contract test per private name -----------------------------------------------------


@contract("Swarm.upgrader")
def test_swarm_upgrader(host: IHost) -> None:
    """The host's network is a Swarm whose `upgrader` is used by both connection upgrades."""
    network = host.get_network()
    assert isinstance(network, Swarm)
    assert isinstance(network.upgrader, TransportUpgrader)
    assert looks_up(Swarm.upgrade_outbound_raw_conn, "upgrader")
    assert looks_up(Swarm.upgrade_inbound_raw_conn, "upgrader")


@contract("TransportUpgrader.upgrade_security")
def test_upgrade_security() -> None:
    """upgrade_security(raw_conn, is_initiator, peer_id) is async and called for both directions."""
    assert inspect.iscoroutinefunction(TransportUpgrader.upgrade_security)
    assert params(TransportUpgrader.upgrade_security) == [
        "self",
        "raw_conn",
        "is_initiator",
        "peer_id",
    ]
    assert looks_up(Swarm.upgrade_outbound_raw_conn, "upgrade_security")
    assert looks_up(Swarm.upgrade_inbound_raw_conn, "upgrade_security")


@contract("Swarm.unblock_peer")
def test_unblock_peer(host: IHost) -> None:
    """Swarm.unblock_peer(peer_id) exists (it is not part of INetworkService)."""
    assert callable(host.get_network().unblock_peer)  # type: ignore[attr-defined]
    assert params(Swarm.unblock_peer) == ["self", "peer_id"]
    compat.unblock_peer(host, make_host().get_id())  # a peer never dialed: a no-op


@contract("pubsub.maybe_consume_signed_record")
def test_pubsub_reads_the_record_check_as_a_global() -> None:
    """The read loop calls the module global `maybe_consume_signed_record`, still the stock one."""
    assert pubsub_module.maybe_consume_signed_record is pubsub_utils.maybe_consume_signed_record
    assert Pubsub.continuously_read_stream.__globals__ is vars(pubsub_module)
    assert looks_up(Pubsub.continuously_read_stream, "maybe_consume_signed_record")


@contract("gossipsub.maybe_consume_signed_record")
def test_gossipsub_reads_the_record_check_as_a_global() -> None:
    """GossipSub.handle_rpc calls its module global `maybe_consume_signed_record`, the stock one."""
    assert gossipsub_module.maybe_consume_signed_record is pubsub_utils.maybe_consume_signed_record
    assert GossipSub.handle_rpc.__globals__ is vars(gossipsub_module)
    assert looks_up(GossipSub.handle_rpc, "maybe_consume_signed_record")


@contract("utils.maybe_consume_signed_record")
def test_stock_record_check(host: IHost) -> None:
    """maybe_consume_signed_record(msg, host, peer_id) accepts an RPC without a sender record."""
    assert params(pubsub_utils.maybe_consume_signed_record) == ["msg", "host", "peer_id"]
    assert pubsub_utils.maybe_consume_signed_record(rpc_pb2.RPC(), host, host.get_id()) is True


@contract("Pubsub.continuously_read_stream")
def test_read_loop() -> None:
    """continuously_read_stream(stream) is async and stream_handler looks it up on self."""
    assert inspect.iscoroutinefunction(Pubsub.continuously_read_stream)
    assert params(Pubsub.continuously_read_stream) == ["self", "stream"]
    assert looks_up(Pubsub.stream_handler, "continuously_read_stream")


@contract("GossipSub.handle_rpc")
def test_handle_rpc() -> None:
    """handle_rpc(rpc, sender_peer_id) is async and the read loop looks it up on the router."""
    assert inspect.iscoroutinefunction(GossipSub.handle_rpc)
    assert params(GossipSub.handle_rpc) == ["self", "rpc", "sender_peer_id"]
    assert looks_up(Pubsub.continuously_read_stream, "handle_rpc")


@contract("Pubsub.counter")
def test_seqno_counter(stock: Pubsub) -> None:
    """`counter` starts near int(time.time()) and _next_seqno increments it."""
    assert isinstance(stock.counter, int) and abs(stock.counter - time.time()) < 60
    stock.counter = 41
    assert stock._next_seqno() == (42).to_bytes(8, "big")


@contract("Pubsub._next_seqno")
def test_next_seqno(stock: Pubsub) -> None:
    """_next_seqno() takes no argument and returns 8 bytes, as `compat.next_seqno` does."""
    assert params(Pubsub._next_seqno) == ["self"]
    first = compat.next_seqno(stock)
    assert len(first) == 8 and int.from_bytes(compat.next_seqno(stock), "big") == (
        int.from_bytes(first, "big") + 1
    )


@contract("Pubsub.peer_queues")
def test_peer_queues(stock: Pubsub) -> None:
    """`peer_queues` starts as an empty dict and _handle_new_peer inserts an RpcQueue into it."""
    assert type(stock.peer_queues) is dict and not stock.peer_queues
    assert looks_up(Pubsub._handle_new_peer, "peer_queues")
    assert looks_up(Pubsub._handle_new_peer, "RpcQueue")


@contract("RpcQueue._queue")
def test_rpc_queue_inner() -> None:
    """An RpcQueue keeps its items in `_queue`, a PriorityQueue."""
    assert isinstance(RpcQueue()._queue, PriorityQueue)


@contract("PriorityQueue.max_size")
def test_queue_bound() -> None:
    """`max_size` (32 by default) is the bound push() enforces, read at every push."""
    queue = RpcQueue()
    assert queue._queue.max_size == 32
    queue._queue.max_size = 2
    assert [queue.push(rpc_pb2.RPC()) for _ in range(3)] == [True, True, False]


@contract("Pubsub._teardown_if_connected")
def test_teardown_if_connected() -> None:
    """_teardown_if_connected(peer_id) is async and add_to_blacklist schedules it."""
    assert inspect.iscoroutinefunction(Pubsub._teardown_if_connected)
    assert params(Pubsub._teardown_if_connected) == ["self", "peer_id"]
    assert looks_up(Pubsub.add_to_blacklist, "_teardown_if_connected")


@contract("Pubsub._forget_all_subscriptions")
def test_forget_all_subscriptions(stock: Pubsub) -> None:
    """_forget_all_subscriptions(peer_id) removes the peer from every topic."""
    peer = make_host().get_id()
    stock.peer_topics["t"] = {peer}
    stock._forget_all_subscriptions(peer)
    assert "t" not in stock.peer_topics


@contract("Pubsub._handle_dead_peer")
def test_handle_dead_peer(stock: Pubsub) -> None:
    """_handle_dead_peer(peer_id) exists and tolerates a peer it never registered."""
    assert params(Pubsub._handle_dead_peer) == ["self", "peer_id"]
    stock._handle_dead_peer(make_host().get_id())


@contract("Pubsub.stream_handler")
def test_stream_handler() -> None:
    """stream_handler(stream) is async and __init__ registers it through self."""
    assert inspect.iscoroutinefunction(Pubsub.stream_handler)
    assert params(Pubsub.stream_handler) == ["self", "stream"]
    assert looks_up(Pubsub.__init__, "stream_handler")


@contract("Pubsub.write_msg")
def test_write_msg() -> None:
    """write_msg(stream, rpc_msg) is async and every RPC writer goes through it."""
    assert inspect.iscoroutinefunction(Pubsub.write_msg)
    assert params(Pubsub.write_msg) == ["self", "stream", "rpc_msg"]
    assert looks_up(Pubsub.handle_sending_messages, "write_msg")
    assert looks_up(GossipSub.flush_pending_messages, "write_msg")
    assert looks_up(GossipSub.send_recent_messages, "write_msg")


@contract("GossipSub.scorer")
def test_gossipsub_scorer() -> None:
    """A GossipSub has a PeerScorer in `scorer`."""
    assert isinstance(make_router().scorer, PeerScorer)


@contract("PeerScorer.on_invalid_message")
def test_on_invalid_message() -> None:
    """PeerScorer.on_invalid_message(peer, topic) takes a peer and a topic."""
    assert params(PeerScorer.on_invalid_message) == ["self", "peer", "topic"]
    router = make_router()
    compat.score_invalid_message(router, make_host().get_id(), ["a", "b"])


@contract("pubsub.PUBSUB_SIGNING_PREFIX")
def test_signing_prefix() -> None:
    """Pubsub message signatures cover PUBSUB_SIGNING_PREFIX, a str."""
    assert compat.pubsub_signing_prefix() == pubsub_module.PUBSUB_SIGNING_PREFIX
    assert isinstance(pubsub_module.PUBSUB_SIGNING_PREFIX, str)


def test_every_entry_has_a_contract_test() -> None:
    """Each entry of PRIVATE_NAMES has exactly one contract test above, and keys are unique."""
    assert len(ENTRIES) == len(compat.PRIVATE_NAMES)
    assert set(CONTRACTS) == set(ENTRIES)


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_module_check_passes_on_the_installed_library(key: str) -> None:
    """The module's own check of each entry passes on the installed py-libp2p."""
    compat.require(ENTRIES[key])


def test_code_names_sees_nested_functions() -> None:
    """code_names includes names looked up inside nested functions and comprehensions."""

    def outer() -> Any:
        def inner() -> Any:
            return [x.deep_name for x in ()]

        return inner

    assert "deep_name" in compat.code_names(outer)


# -- a missing or changed name fails loudly ---------------------------------------------------


def test_missing_private_method_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Pubsub._teardown_if_connected, building our pubsub raises LibP2PCompatError."""
    monkeypatch.delattr(Pubsub, "_teardown_if_connected")
    with pytest.raises(LibP2PCompatError, match="Pubsub._teardown_if_connected is missing"):
        CompatPubsub(make_host(), make_router())


def test_missing_upgrade_security_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TransportUpgrader.upgrade_security, building a gated host raises."""
    monkeypatch.delattr(TransportUpgrader, "upgrade_security")
    with pytest.raises(LibP2PCompatError, match="upgrade_security is missing"):
        make_host()


def test_renamed_queue_bound_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue whose bound is no longer `max_size` is an error, not a silently ignored patch."""

    def renamed_init(self: PriorityQueue, max_size: int = 32) -> None:
        self.capacity = max_size

    monkeypatch.setattr(PriorityQueue, "__init__", renamed_init)
    with pytest.raises(LibP2PCompatError, match="PriorityQueue.max_size is no longer set"):
        CompatPubsub(make_host(), make_router())


def test_global_no_longer_called_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read loop that no longer calls maybe_consume_signed_record makes our pubsub raise."""

    async def read_loop(self: Pubsub, stream: Any) -> None:
        await trio.sleep(0)

    monkeypatch.setattr(Pubsub, "continuously_read_stream", read_loop)
    with pytest.raises(LibP2PCompatError, match="no longer looked up by"):
        GuardedPubsub(make_host(), make_router())


def test_changed_signature_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgrade_security with other parameters is reported with the parameters it takes."""

    async def upgrade_security(self: Any, conn: Any, initiator: bool) -> Any:
        return conn

    monkeypatch.setattr(TransportUpgrader, "upgrade_security", upgrade_security)
    with pytest.raises(LibP2PCompatError, match="takes"):
        compat.require(compat.UPGRADE_SECURITY)


# -- the version pin --------------------------------------------------------------------------


def test_pin_matches_pyproject() -> None:
    """PINNED_LIBP2P_VERSION is the `libp2p==` pin of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = [
        d for d in project["project"]["dependencies"] if d.replace(" ", "").startswith("libp2p==")
    ]
    assert pins == [f"libp2p=={compat.PINNED_LIBP2P_VERSION}"]


def test_installed_version_is_the_pin() -> None:
    """The installed py-libp2p is the pinned one (else importing the module would have failed)."""
    assert compat.installed_libp2p_version() == compat.PINNED_LIBP2P_VERSION
    compat.check_libp2p_version()


def test_other_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another installed version raises LibP2PVersionError naming both versions."""
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.9.0")
    with pytest.raises(LibP2PVersionError, match=r"needs py-libp2p 0\.8\.1.*found 0\.9\.0"):
        compat.check_libp2p_version()
    assert issubclass(LibP2PVersionError, ImportError)


def test_missing_libp2p_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """No py-libp2p installed at all raises LibP2PVersionError too."""

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(LibP2PVersionError, match="no libp2p installed"):
        compat.check_libp2p_version()


# -- the patches are per instance and keep their behaviour ------------------------------------


def test_rebinding_is_per_instance(ours: CompatPubsub, stock: Pubsub) -> None:
    """Our pubsub and router use our record check; the library and a stock pubsub do not."""
    name = "maybe_consume_signed_record"
    assert ours.continuously_read_stream.__func__.__globals__[name] == ours.consume_sender_record
    assert ours.router.handle_rpc.__func__.__globals__[name] == ours.consume_sender_record
    assert stock.continuously_read_stream.__func__ is Pubsub.continuously_read_stream
    assert stock.router.handle_rpc.__func__ is GossipSub.handle_rpc
    assert pubsub_module.maybe_consume_signed_record is pubsub_utils.maybe_consume_signed_record
    assert gossipsub_module.maybe_consume_signed_record is pubsub_utils.maybe_consume_signed_record


def test_sender_record_is_verified_once_per_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer's record is verified once per pubsub instance; a forged one every time, refused."""
    calls: list[tuple[IHost, ID]] = []
    stock_check = pubsub_utils.maybe_consume_signed_record

    def counting(msg: Any, host: IHost, peer_id: ID) -> bool:
        calls.append((host, peer_id))
        return stock_check(msg, host, peer_id)

    monkeypatch.setattr(pubsub_utils, "maybe_consume_signed_record", counting)
    first, second = (CompatPubsub(make_host(), make_router()) for _ in range(2))
    sender, stranger = make_host(), make_host()
    rpc = rpc_pb2.RPC(senderRecord=env_to_send_in_RPC(sender)[0])
    for _ in range(5):
        assert first.consume_sender_record(rpc, first.host, sender.get_id())
    assert second.consume_sender_record(rpc, second.host, sender.get_id())
    assert [host for host, _ in calls] == [first.host, second.host]

    forged = rpc_pb2.RPC(senderRecord=env_to_send_in_RPC(stranger)[0])
    calls.clear()
    for _ in range(3):
        assert not first.consume_sender_record(forged, first.host, sender.get_id())
    assert len(calls) == 3


def test_queues_are_widened_as_inserted(ours: CompatPubsub) -> None:
    """A queue inserted into peer_queues takes the configured bound before any push."""
    queue = RpcQueue()
    ours.peer_queues[make_host().get_id()] = queue
    assert queue._queue.max_size == 1024
    assert all(queue.push(rpc_pb2.RPC()) for _ in range(100))


def test_seqno_starts_from_time_ns(ours: CompatPubsub) -> None:
    """The seqno counter starts at time.time_ns(), far beyond any int(time.time())."""
    assert abs(ours.counter - time.time_ns()) < 60 * 10**9


class _ResetRemovesPeer:
    """A stream whose reset lets the dead-peer path remove the peer meanwhile."""

    def __init__(self, pubsub: Pubsub, peer: ID) -> None:
        self.pubsub, self.peer = pubsub, peer

    async def reset(self) -> None:
        await trio.sleep(0)
        self.pubsub.peers.pop(self.peer, None)


async def test_stock_teardown_races_and_ours_does_not(stock: Pubsub, ours: CompatPubsub) -> None:
    """The stock teardown raises KeyError when the peer goes during its await; ours does not."""
    peer = make_host().get_id()
    stock.peers[peer] = _ResetRemovesPeer(stock, peer)  # type: ignore[assignment]
    with pytest.raises(KeyError):
        await stock._teardown_if_connected(peer)
    ours.peers[peer] = _ResetRemovesPeer(ours, peer)  # type: ignore[assignment]
    ours.peer_topics["t"] = {peer}
    await ours._teardown_if_connected(peer)
    assert peer not in ours.peers and "t" not in ours.peer_topics


async def test_gate_checks_each_secured_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate wraps upgrade_security on this host's upgrader only and refuses a stranger."""

    class Secured:
        closed = False

        def get_remote_peer(self) -> ID:
            return stranger

        async def close(self) -> None:
            self.closed = True

    async def handshake(self: Any, raw_conn: Any, is_initiator: bool, peer_id: Any = None) -> Any:
        return Secured()

    monkeypatch.setattr(TransportUpgrader, "upgrade_security", handshake)
    stranger, refused = make_host().get_id(), []
    host = build_host(
        NodeIdentity(os.urandom(32)).key_pair(),
        "/ip4/127.0.0.1/tcp/0",
        PeerGate([], refused.append),
    )
    upgrader = host.get_network().upgrader  # type: ignore[attr-defined]
    assert "upgrade_security" in vars(upgrader)  # on this instance, not on the class
    assert TransportUpgrader.upgrade_security is handshake
    with pytest.raises(SecurityUpgradeFailure, match="not in the allow-list"):
        await upgrader.upgrade_security(None, False)
    assert refused == [stranger]


@contract("yamux._yamux_release_on_read")
def test_yamux_release_on_read_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-read window-update switch is read from the environment at each call."""
    from libp2p.stream_muxer.yamux import yamux

    monkeypatch.setenv(compat.YAMUX_RELEASE_ENV, "1")  # restored after the test
    monkeypatch.delenv(compat.YAMUX_RELEASE_ENV)
    assert yamux._yamux_release_on_read() is True  # the stock default: a frame per read
    compat.batch_yamux_window_updates()
    assert os.environ[compat.YAMUX_RELEASE_ENV] == "0"
    assert yamux._yamux_release_on_read() is False
    assert looks_up(yamux.YamuxStream._auto_tune_and_send_window_update, "_yamux_release_on_read")


@contract("YamuxStream._auto_tune_and_send_window_update")
def test_yamux_window_update_after_each_read() -> None:
    """YamuxStream.read calls _auto_tune_and_send_window_update(bytes_read=...) through self,
    an async method whose one parameter is the keyword bytes_read; the per-stream rule
    replaces it on the instance only."""
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
    method = YamuxStream._auto_tune_and_send_window_update
    assert inspect.iscoroutinefunction(method)
    assert params(method) == ["self", "bytes_read"]
    assert inspect.signature(method).parameters["bytes_read"].kind is KEYWORD_ONLY
    assert looks_up(YamuxStream.read, "_auto_tune_and_send_window_update")
