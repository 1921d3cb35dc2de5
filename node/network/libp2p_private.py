"""The py-libp2p private names bcfl relies on, the version pin, and checked access to them.

Part of the compatibility layer whose entry point is `node.network.libp2p_compat` (import it
from there: it checks the version before anything imports the library):

- `PINNED_LIBP2P_VERSION` and `check_libp2p_version`, which the entry point runs at import;
- `PRIVATE_NAMES`: each private name or behaviour relied on, with the object, the name, what
  kind of thing it must be, the library functions that must still look it up (`used_by`),
  and why we need it. `tests/unit/node/test_libp2p_compat.py` checks every entry against the
  installed library;
- `require`, which checks entries on the installed library, and `lookup`, `replace_existing`
  and `rebind_global`, the only ways `node.network.libp2p_patches` touches a private name:
  each raises `LibP2PCompatError` naming the entry when a name is missing, and nothing falls
  back to a default.

This module imports no py-libp2p module itself (`resolve` does, when a check runs), so
importing it before the version check is safe.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

PINNED_LIBP2P_VERSION = "0.8.1"  # must equal the `libp2p==` pin of pyproject.toml


class LibP2PVersionError(ImportError):
    """The installed py-libp2p is not the version whose internals bcfl was checked on."""


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
            f"`pip install libp2p=={PINNED_LIBP2P_VERSION}`, or re-check PRIVATE_NAMES in "
            f"node/network/libp2p_private.py against the new version before moving the pin"
        )


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

_YAMUX_STREAM = "libp2p.stream_muxer.yamux.yamux.YamuxStream"
YAMUX_WINDOW_UPDATE = PrivateName(
    _YAMUX_STREAM,
    "_auto_tune_and_send_window_update",
    Kind.CALLABLE,
    "called after every read of a stream; besides go-yamux's half-window rule it sends an "
    "update whenever a read leaves the window short of its target by less than half (its "
    "'partial slack' branch), so a stream of small frames answers every other frame with a "
    "WINDOW_UPDATE; replaced per stream on direct streams by the go-yamux rule",
    used_by=(f"{_YAMUX_STREAM}.read",),
    params=("bytes_read",),
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
    YAMUX_WINDOW_UPDATE,
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


def compat_error(entry: PrivateName, problem: str) -> LibP2PCompatError:
    """The error saying that `entry` `problem` (e.g. "is missing") on the installed library."""
    return LibP2PCompatError(
        f"py-libp2p {installed_libp2p_version()}: {entry.owner}.{entry.name} {problem}; bcfl "
        f"relies on it ({entry.why}). Re-check PRIVATE_NAMES in node/network/libp2p_private.py "
        f"against this version (pinned: {PINNED_LIBP2P_VERSION})"
    )


def _check_one(entry: PrivateName) -> None:
    try:
        owner = resolve(entry.owner)
    except (ImportError, AttributeError):
        raise compat_error(entry, "cannot be checked: its owner is gone") from None
    if entry.kind is Kind.CALLABLE:
        try:
            value = inspect.getattr_static(owner, entry.name)
        except AttributeError:
            raise compat_error(entry, "is missing") from None
        function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        if not callable(function):
            raise compat_error(entry, "is no longer callable")
        names = list(inspect.signature(function).parameters)
        if inspect.isclass(owner) and not isinstance(value, staticmethod):
            names = names[1:]
        if tuple(names[: len(entry.params)]) != entry.params:
            raise compat_error(entry, f"takes {tuple(names)}, not {entry.params}")
    elif entry.kind is Kind.ATTRIBUTE:
        if not _class_sets(owner, entry.name):
            raise compat_error(entry, "is no longer set by its class")
    else:  # GLOBAL and CONSTANT live in a module's namespace
        if entry.name not in vars(owner):
            raise compat_error(entry, "is missing from the module")
    for user in entry.used_by:
        try:
            function = resolve(user)
            names_used = code_names(function)
        except (ImportError, AttributeError):
            raise compat_error(entry, f"cannot be checked: {user} is gone") from None
        if entry.name not in names_used:
            raise compat_error(entry, f"is no longer looked up by {user}")
        if entry.kind is Kind.GLOBAL and inspect.unwrap(function).__globals__ is not vars(owner):
            raise compat_error(entry, f"is not a global of {user}")


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


def lookup(obj: Any, entry: PrivateName) -> Any:
    """`obj.<entry.name>`, or `LibP2PCompatError` naming the entry (no default)."""
    try:
        return getattr(obj, entry.name)
    except AttributeError:
        where = obj.__qualname__ if isinstance(obj, type) else f"a {type(obj).__qualname__}"
        raise compat_error(entry, f"is missing on {where}") from None


def replace_existing(obj: Any, entry: PrivateName, value: Any) -> None:
    """Replace an attribute that must already exist (a rename must not create a new one)."""
    lookup(obj, entry)
    setattr(obj, entry.name, value)


def rebind_global(
    obj: Any, method: PrivateName, global_: PrivateName, value: Callable[..., Any]
) -> None:
    """Give `obj` its own copy of `method` in which the module global `global_` is `value`.

    The copy has the same code, defaults and closure; only its globals differ (a snapshot of
    the module namespace with one name replaced). It is bound to `obj` as an instance
    attribute, so the class, the library module and every other instance are untouched.
    """
    function = lookup(type(obj), method)
    if global_.name not in code_names(function) or global_.name not in function.__globals__:
        raise compat_error(global_, f"is no longer looked up by {function.__qualname__}")
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
