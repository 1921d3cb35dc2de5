"""Every use of py-libp2p internals in bcfl, pinned to py-libp2p 0.8.1 and checked.

py-libp2p renames private names between releases, and a patch of a renamed name does not
fail: it silently stops working (a queue limit that is no longer raised, a cache that is no
longer consulted). So everything the node does beyond the library's public API lives here:

- `PRIVATE_NAMES` lists each private name or behaviour relied on: the object, the name, what
  kind of thing it must be, the library functions that must still look it up (`used_by`),
  and why we need it. `tests/unit/node/test_libp2p_compat.py` checks every entry against the
  installed library.
- Access goes through `require` and `_get`, which raise `LibP2PCompatError` naming the entry
  when a name is missing; nothing falls back to a default.
- Patches are per instance, on the host, upgrader, pubsub, router and queue objects a node
  creates (`wrap_upgrade_security`, `CompatPubsub`); no module of the library is modified,
  so a stock `Pubsub` in the same process behaves as shipped.
- Importing this module fails with `LibP2PVersionError` unless the installed py-libp2p is
  the version pinned in pyproject.toml (`PINNED_LIBP2P_VERSION`).

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

`node.network.guarded_pubsub` builds on `CompatPubsub` with overrides of public methods only
(the malformed-frame guard and the per-stream write lock); the behaviours those rely on are
entries of the table too.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import inspect
import os
import time
import types
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

PINNED_LIBP2P_VERSION = "0.8.1"  # must equal the `libp2p==` pin of pyproject.toml


class LibP2PVersionError(ImportError):
    """The installed py-libp2p is not the version whose internals this module was checked on."""


class LibP2PCompatError(RuntimeError):
    """A py-libp2p private name or behaviour listed in `PRIVATE_NAMES` is missing or changed."""


def installed_libp2p_version() -> str | None:
    """The installed py-libp2p version, or None when it is not installed."""
    try:
        return metadata.version("libp2p")
    except metadata.PackageNotFoundError:
        return None


def check_libp2p_version() -> None:
    """Raise `LibP2PVersionError` unless the installed py-libp2p is the pinned version."""
    found = installed_libp2p_version()
    if found != PINNED_LIBP2P_VERSION:
        raise LibP2PVersionError(
            f"bcfl needs py-libp2p {PINNED_LIBP2P_VERSION} (the pin in pyproject.toml) because "
            f"it relies on that version's internals, but found "
            f"{'no libp2p installed' if found is None else found}; install it with "
            f"`pip install libp2p=={PINNED_LIBP2P_VERSION}`, or re-check "
            f"node/network/libp2p_compat.py against the new version before moving the pin"
        )


check_libp2p_version()

# Imported after the version check, so that another version fails with its clear message.
from libp2p.abc import IHost  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402
from libp2p.pubsub import pubsub as _pubsub_module  # noqa: E402
from libp2p.pubsub import rpc_queue as _rpc_queue_module  # noqa: E402
from libp2p.pubsub import utils as _pubsub_utils  # noqa: E402
from libp2p.pubsub.pubsub import Pubsub  # noqa: E402

# -- the table -----------------------------------------------------------------------------


class Kind(enum.StrEnum):
    """What a private name must be on the installed library."""

    CALLABLE = "callable"  # a method or function we call, wrap or override
    ATTRIBUTE = "attribute"  # an instance attribute the owner's __init__ sets (or a class one)
    GLOBAL = "global"  # a module global that `used_by` look up at call time; we rebind it
    CONSTANT = "constant"  # a module-level value we read


@dataclass(frozen=True, slots=True)
class PrivateName:
    """One py-libp2p name (or behaviour) the node relies on beyond the public API.

    Attributes:
        owner: dotted path of the libp2p class or module that holds `name`.
        name: the attribute, method or global.
        kind: what `name` must be.
        why: what the node does with it.
        used_by: dotted paths of library functions that must still look `name` up at call
            time, or our override or per-instance rebinding would silently not take effect.
        params: leading parameter names (after self) of a callable we call or wrap.
    """

    owner: str
    name: str
    kind: Kind
    why: str
    used_by: tuple[str, ...] = ()
    params: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Short unique id, `Owner.name` (e.g. `Pubsub.counter`)."""
        return f"{self.owner.rsplit('.', 1)[-1]}.{self.name}"


_SWARM = "libp2p.network.swarm.Swarm"
_UPGRADER = "libp2p.transport.upgrader.TransportUpgrader"
_PUBSUB = "libp2p.pubsub.pubsub.Pubsub"
_GOSSIPSUB = "libp2p.pubsub.gossipsub.GossipSub"
_SWARM_UPGRADES = (f"{_SWARM}.upgrade_outbound_raw_conn", f"{_SWARM}.upgrade_inbound_raw_conn")

SWARM_UPGRADER = PrivateName(
    _SWARM,
    "upgrader",
    Kind.ATTRIBUTE,
    "the host network's transport upgrader (not on INetworkService), whose "
    "upgrade_security the peer-id gate wraps",
    used_by=_SWARM_UPGRADES,
)
UPGRADE_SECURITY = PrivateName(
    _UPGRADER,
    "upgrade_security",
    Kind.CALLABLE,
    "first point where the remote peer id is authenticated (Noise), for inbound and "
    "outbound connections; wrapped per upgrader for the peer-id gate",
    used_by=_SWARM_UPGRADES,
    params=("raw_conn", "is_initiator", "peer_id"),
)
SWARM_UNBLOCK_PEER = PrivateName(
    _SWARM,
    "unblock_peer",
    Kind.CALLABLE,
    "clears the 60 s negative dial cache of a peer before a redial (not on INetworkService)",
    params=("peer_id",),
)
PUBSUB_CONSUME_RECORD = PrivateName(
    "libp2p.pubsub.pubsub",
    "maybe_consume_signed_record",
    Kind.GLOBAL,
    "verifies the sender record of every inbound RPC; rebound per pubsub instance to the "
    "once-per-record check",
    used_by=(f"{_PUBSUB}.continuously_read_stream",),
)
GOSSIPSUB_CONSUME_RECORD = PrivateName(
    "libp2p.pubsub.gossipsub",
    "maybe_consume_signed_record",
    Kind.GLOBAL,
    "verifies the sender record again for the control part of every RPC; rebound per router "
    "instance to the same once-per-record check",
    used_by=(f"{_GOSSIPSUB}.handle_rpc",),
)
VERIFY_SENDER_RECORD = PrivateName(
    "libp2p.pubsub.utils",
    "maybe_consume_signed_record",
    Kind.CALLABLE,
    "the stock check (signature, peer id, peerstore update) that the once-per-record "
    "check delegates to",
    params=("msg", "host", "peer_id"),
)
READ_STREAM = PrivateName(
    _PUBSUB,
    "continuously_read_stream",
    Kind.CALLABLE,
    "the inbound RPC loop; copied per instance with its sender-record global rebound, so "
    "stream_handler must look it up on self",
    used_by=(f"{_PUBSUB}.stream_handler",),
    params=("stream",),
)
HANDLE_RPC = PrivateName(
    _GOSSIPSUB,
    "handle_rpc",
    Kind.CALLABLE,
    "the router's control-message handler; copied per router with its sender-record global "
    "rebound, so the read loop must look it up on the router",
    used_by=(f"{_PUBSUB}.continuously_read_stream",),
    params=("rpc", "sender_peer_id"),
)
SEQNO_COUNTER = PrivateName(
    _PUBSUB,
    "counter",
    Kind.ATTRIBUTE,
    "the message seqno counter, started at int(time.time()) (restarted nodes reuse message "
    "ids); set to time.time_ns()",
    used_by=(f"{_PUBSUB}._next_seqno",),
)
NEXT_SEQNO = PrivateName(
    _PUBSUB,
    "_next_seqno",
    Kind.CALLABLE,
    "the next message seqno, for messages signed outside publish() (node.byzantine)",
    params=(),
)
PEER_QUEUES = PrivateName(
    _PUBSUB,
    "peer_queues",
    Kind.ATTRIBUTE,
    "the per-peer outbound RpcQueue dict; replaced by one that raises each queue's bound "
    "as _handle_new_peer inserts it",
    used_by=(f"{_PUBSUB}._handle_new_peer",),
)
RPC_QUEUE_INNER = PrivateName(
    "libp2p.pubsub.rpc_queue.RpcQueue",
    "_queue",
    Kind.ATTRIBUTE,
    "the bounded PriorityQueue inside each per-peer RpcQueue",
    used_by=("libp2p.pubsub.rpc_queue.RpcQueue.push",),
)
QUEUE_MAX_SIZE = PrivateName(
    "libp2p.pubsub.rpc_queue.PriorityQueue",
    "max_size",
    Kind.ATTRIBUTE,
    "the bound (32) above which push() drops an outbound RPC; raised to outbound_queue_size",
    used_by=("libp2p.pubsub.rpc_queue.PriorityQueue.push",),
)
TEARDOWN_IF_CONNECTED = PrivateName(
    _PUBSUB,
    "_teardown_if_connected",
    Kind.CALLABLE,
    "overridden: the stock one dies with KeyError when the dead-peer path removed the peer "
    "during its await",
    used_by=(f"{_PUBSUB}.add_to_blacklist",),
    params=("peer_id",),
)
FORGET_SUBSCRIPTIONS = PrivateName(
    _PUBSUB,
    "_forget_all_subscriptions",
    Kind.CALLABLE,
    "called by the teardown override to drop a peer from every topic",
    params=("peer_id",),
)
HANDLE_DEAD_PEER = PrivateName(
    _PUBSUB,
    "_handle_dead_peer",
    Kind.CALLABLE,
    "called after a malformed frame, the cleanup the stock stream_handler does on a read error",
    params=("peer_id",),
)
STREAM_HANDLER = PrivateName(
    _PUBSUB,
    "stream_handler",
    Kind.CALLABLE,
    "overridden by the malformed-frame guard; __init__ registers self.stream_handler for "
    "each pubsub protocol, so the override is what the host calls",
    used_by=(f"{_PUBSUB}.__init__",),
    params=("stream",),
)
WRITE_MSG = PrivateName(
    _PUBSUB,
    "write_msg",
    Kind.CALLABLE,
    "overridden with a per-stream lock; the sending loop and gossipsub's flush and replay "
    "paths all write RPCs through it",
    used_by=(
        f"{_PUBSUB}.handle_sending_messages",
        f"{_GOSSIPSUB}.flush_pending_messages",
        f"{_GOSSIPSUB}.send_recent_messages",
    ),
    params=("stream", "rpc_msg"),
)
GOSSIPSUB_SCORER = PrivateName(
    _GOSSIPSUB,
    "scorer",
    Kind.ATTRIBUTE,
    "the router's peer scorer: a malformed frame counts as an invalid message on each topic",
)
ON_INVALID_MESSAGE = PrivateName(
    "libp2p.pubsub.score.PeerScorer",
    "on_invalid_message",
    Kind.CALLABLE,
    "scores a peer down for an invalid message on a topic",
    params=("peer", "topic"),
)
SIGNING_PREFIX = PrivateName(
    "libp2p.pubsub.pubsub",
    "PUBSUB_SIGNING_PREFIX",
    Kind.CONSTANT,
    "prefix of pubsub message signatures, for messages signed outside publish() "
    "(node.byzantine, the malicious-peer tests)",
)

YAMUX_RELEASE_ON_READ = PrivateName(
    "libp2p.stream_muxer.yamux.yamux",
    "_yamux_release_on_read",
    Kind.CALLABLE,
    "reads PY_YAMUX_RELEASE_ON_READ at call time; on (the default) every read of a stream "
    "sends a WINDOW_UPDATE frame (~15% of a devnet node's CPU); off, credit is returned in "
    "batches of half the window (go-yamux)",
    used_by=("libp2p.stream_muxer.yamux.yamux.YamuxStream._auto_tune_and_send_window_update",),
    params=(),
)

PRIVATE_NAMES: tuple[PrivateName, ...] = (
    SWARM_UPGRADER,
    UPGRADE_SECURITY,
    SWARM_UNBLOCK_PEER,
    PUBSUB_CONSUME_RECORD,
    GOSSIPSUB_CONSUME_RECORD,
    VERIFY_SENDER_RECORD,
    READ_STREAM,
    HANDLE_RPC,
    SEQNO_COUNTER,
    NEXT_SEQNO,
    PEER_QUEUES,
    RPC_QUEUE_INNER,
    QUEUE_MAX_SIZE,
    TEARDOWN_IF_CONNECTED,
    FORGET_SUBSCRIPTIONS,
    HANDLE_DEAD_PEER,
    STREAM_HANDLER,
    WRITE_MSG,
    GOSSIPSUB_SCORER,
    ON_INVALID_MESSAGE,
    SIGNING_PREFIX,
    YAMUX_RELEASE_ON_READ,
)

# -- checks and access ---------------------------------------------------------------------


def resolve(path: str) -> Any:
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = inspect.getattr_static(obj, attr)
        return obj
    raise ImportError(f"no module in {path!r}")


def code_names(function: Any) -> frozenset[str]:
    """Every global and attribute name a function's code (nested code included) looks up."""
    function = inspect.unwrap(function)
    if isinstance(function, staticmethod | classmethod):
        function = function.__func__
    names: set[str] = set()
    stack = [function.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return frozenset(names)


def _fail(entry: PrivateName, problem: str) -> LibP2PCompatError:
    return LibP2PCompatError(
        f"py-libp2p {installed_libp2p_version()}: {entry.owner}.{entry.name} {problem}; bcfl "
        f"relies on it ({entry.why}). Re-check node/network/libp2p_compat.py against this "
        f"version (pinned: {PINNED_LIBP2P_VERSION})"
    )


def _check_one(entry: PrivateName) -> None:
    try:
        owner = resolve(entry.owner)
    except (ImportError, AttributeError):
        raise _fail(entry, "cannot be checked: its owner is gone") from None
    if entry.kind is Kind.CALLABLE:
        try:
            value = inspect.getattr_static(owner, entry.name)
        except AttributeError:
            raise _fail(entry, "is missing") from None
        function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        if not callable(function):
            raise _fail(entry, "is no longer callable")
        names = list(inspect.signature(function).parameters)
        if inspect.isclass(owner) and not isinstance(value, staticmethod):
            names = names[1:]
        if tuple(names[: len(entry.params)]) != entry.params:
            raise _fail(entry, f"takes {tuple(names)}, not {entry.params}")
    elif entry.kind is Kind.ATTRIBUTE:
        if not _class_sets(owner, entry.name):
            raise _fail(entry, "is no longer set by its class")
    else:  # GLOBAL and CONSTANT live in a module's namespace
        if entry.name not in vars(owner):
            raise _fail(entry, "is missing from the module")
    for user in entry.used_by:
        try:
            function = resolve(user)
            names_used = code_names(function)
        except (ImportError, AttributeError):
            raise _fail(entry, f"cannot be checked: {user} is gone") from None
        if entry.name not in names_used:
            raise _fail(entry, f"is no longer looked up by {user}")
        if entry.kind is Kind.GLOBAL and inspect.unwrap(function).__globals__ is not vars(owner):
            raise _fail(entry, f"is not a global of {user}")


def _class_sets(cls: type, name: str) -> bool:
    with contextlib.suppress(AttributeError):
        inspect.getattr_static(cls, name)
        return True
    inits = (vars(klass).get("__init__") for klass in cls.__mro__)
    return any(inspect.isfunction(init) and name in code_names(init) for init in inits)


def require(*entries: PrivateName) -> None:
    """Check entries of `PRIVATE_NAMES` on the installed library; raise `LibP2PCompatError`."""
    for entry in entries:
        _check_one(entry)


def _get(obj: Any, entry: PrivateName) -> Any:
    """`obj.<entry.name>`, or `LibP2PCompatError` naming the entry (no default)."""
    try:
        return getattr(obj, entry.name)
    except AttributeError:
        where = obj.__qualname__ if isinstance(obj, type) else f"a {type(obj).__qualname__}"
        raise _fail(entry, f"is missing on {where}") from None


def _set_existing(obj: Any, entry: PrivateName, value: Any) -> None:
    """Replace an attribute that must already exist (a rename must not create a new one)."""
    _get(obj, entry)
    setattr(obj, entry.name, value)


def _rebind_global(
    obj: Any, method: PrivateName, global_: PrivateName, value: Callable[..., Any]
) -> None:
    """Give `obj` its own copy of `method` in which the module global `global_` is `value`.

    The copy has the same code, defaults and closure; only its globals differ (a snapshot of
    the module namespace with one name replaced). It is bound to `obj` as an instance
    attribute, so the class, the library module and every other instance are untouched.
    """
    function = _get(type(obj), method)
    if global_.name not in code_names(function) or global_.name not in function.__globals__:
        raise _fail(global_, f"is no longer looked up by {function.__qualname__}")
    namespace = dict(function.__globals__)
    namespace[global_.name] = value
    copy = types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__, function.__closure__
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    copy.__wrapped__ = function  # type: ignore[attr-defined]
    setattr(obj, method.name, types.MethodType(copy, obj))


# -- host ----------------------------------------------------------------------------------


def wrap_upgrade_security(host: IHost, admit: Callable[[Any], Awaitable[None]]) -> None:
    """Await `admit(secured_conn)` after every security handshake of `host`, both directions.

    `admit` raises to refuse the connection (before any muxer, stream or pubsub state exists).
    """
    require(SWARM_UPGRADER, UPGRADE_SECURITY)
    upgrader = _get(host.get_network(), SWARM_UPGRADER)
    original = _get(upgrader, UPGRADE_SECURITY)

    async def upgrade_security(raw_conn: Any, is_initiator: bool, peer_id: ID | None = None) -> Any:
        secured = await original(raw_conn, is_initiator, peer_id)
        await admit(secured)
        return secured

    _set_existing(upgrader, UPGRADE_SECURITY, upgrade_security)


def unblock_peer(host: IHost, peer_id: ID) -> None:
    """Forget a failed dial to `peer_id`, so the next dial is attempted now (not in 60 s)."""
    require(SWARM_UNBLOCK_PEER)
    _get(host.get_network(), SWARM_UNBLOCK_PEER)(peer_id)


def batch_yamux_window_updates() -> None:
    """Make Yamux return receive credit in batches, not with a frame after every read.

    Process-wide (py-libp2p reads the switch from the environment at each call); call it
    once at daemon start-up.
    """
    require(YAMUX_RELEASE_ON_READ)
    os.environ[YAMUX_RELEASE_ENV] = "0"


YAMUX_RELEASE_ENV = "PY_YAMUX_RELEASE_ON_READ"

# -- pubsub --------------------------------------------------------------------------------

SENDER_RECORD_TTL_S = 600.0
_SENDER_RECORDS_MAX = 4096


def next_seqno(pubsub: Pubsub) -> bytes:
    """The next seqno of `pubsub`, for a message signed outside `publish()`."""
    require(NEXT_SEQNO)
    seqno: bytes = _get(pubsub, NEXT_SEQNO)()
    return seqno


def pubsub_signing_prefix() -> str:
    """The prefix pubsub message signatures cover (before the serialized message)."""
    require(SIGNING_PREFIX)
    prefix: str = _get(_pubsub_module, SIGNING_PREFIX)
    return prefix


def score_invalid_message(router: Any, peer_id: ID, topics: Iterable[str]) -> None:
    """Count an invalid message from `peer_id` on each topic in the router's peer score."""
    scorer = _get(router, GOSSIPSUB_SCORER)
    if scorer is None:  # a GossipSub built without scoring
        return
    on_invalid = _get(scorer, ON_INVALID_MESSAGE)
    for topic in topics:
        on_invalid(peer_id, topic)


def _widen(queue: Any, max_size: int) -> None:
    _set_existing(_get(queue, RPC_QUEUE_INNER), QUEUE_MAX_SIZE, max_size)


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
        _set_existing(self, SEQNO_COUNTER, time.time_ns())
        queues = _get(self, PEER_QUEUES)
        if type(queues) is not dict or queues:
            raise _fail(PEER_QUEUES, f"is a {type(queues).__name__} at start, not an empty dict")
        _widen(_rpc_queue_module.RpcQueue(), outbound_queue_size)  # fail now, not per peer
        self.peer_queues = _SizedQueues(outbound_queue_size)
        self._verify_sender_record = _get(_pubsub_utils, VERIFY_SENDER_RECORD)
        self._sender_records: dict[tuple[bytes, bytes], float] = {}
        _rebind_global(self, READ_STREAM, PUBSUB_CONSUME_RECORD, self.consume_sender_record)
        _rebind_global(router, HANDLE_RPC, GOSSIPSUB_CONSUME_RECORD, self.consume_sender_record)

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
        _get(self, FORGET_SUBSCRIPTIONS)(peer_id)

    def drop_dead_peer(self, peer_id: ID) -> None:
        """The library's cleanup after a peer's pubsub stream failed."""
        require(HANDLE_DEAD_PEER)
        _get(self, HANDLE_DEAD_PEER)(peer_id)
