"""Every use of py-libp2p internals in bcfl, pinned to py-libp2p 0.8.1 and checked.

py-libp2p renames private names between releases, and a patch of a renamed name does not
fail: it silently stops working (a queue limit that is no longer raised, a cache that is no
longer consulted). So everything the node does beyond the library's public API lives behind
this module, the entry point of the compatibility layer (import from here, not from its two
halves):

- Importing it fails with `LibP2PVersionError` unless the installed py-libp2p is the version
  pinned in pyproject.toml (`PINNED_LIBP2P_VERSION`); the check runs before any module of the
  layer imports the library.
- `node.network.libp2p_private` holds `PRIVATE_NAMES`, each private name or behaviour relied
  on (owner, name, kind, the library functions that must still look it up, and why), and the
  checked access to them: `require` and `lookup` raise `LibP2PCompatError` naming the entry
  when a name is missing; nothing falls back to a default.
  `tests/unit/node/test_libp2p_compat.py` checks every entry against the installed library.
- `node.network.libp2p_patches` holds the patches, per instance, on the host, upgrader,
  pubsub, router and queue objects a node creates (`wrap_upgrade_security`, `unblock_peer`,
  `CompatPubsub`), and the numbered list of the pitfalls they work around; no module of the
  library is modified, so a stock `Pubsub` in the same process behaves as shipped.

`node.network.guarded_pubsub` builds on `CompatPubsub` with overrides of public methods only
(the malformed-frame guard and the per-stream write lock); the behaviours those rely on are
entries of the table too. The list of every pitfall the node code works around, and where,
is docs/libp2p-compat.md.
"""

from __future__ import annotations

from node.network.libp2p_private import (
    FORGET_SUBSCRIPTIONS,
    GOSSIPSUB_CONSUME_RECORD,
    GOSSIPSUB_SCORER,
    HANDLE_DEAD_PEER,
    HANDLE_RPC,
    NEXT_SEQNO,
    ON_INVALID_MESSAGE,
    PEER_QUEUES,
    PINNED_LIBP2P_VERSION,
    PRIVATE_NAMES,
    PUBSUB_CONSUME_RECORD,
    QUEUE_MAX_SIZE,
    READ_STREAM,
    RPC_QUEUE_INNER,
    SEQNO_COUNTER,
    SIGNING_PREFIX,
    STREAM_HANDLER,
    SWARM_UNBLOCK_PEER,
    SWARM_UPGRADER,
    TEARDOWN_IF_CONNECTED,
    UPGRADE_SECURITY,
    VERIFY_SENDER_RECORD,
    WRITE_MSG,
    YAMUX_RELEASE_ON_READ,
    YAMUX_WINDOW_UPDATE,
    Kind,
    LibP2PCompatError,
    LibP2PVersionError,
    PrivateName,
    check_libp2p_version,
    code_names,
    installed_libp2p_version,
    require,
    resolve,
)

check_libp2p_version()

# Imported after the version check (this half imports the library), so that another version
# fails with its clear message.
from node.network.libp2p_patches import (  # noqa: E402
    SENDER_RECORD_TTL_S,
    YAMUX_RELEASE_ENV,
    CompatPubsub,
    batch_yamux_window_updates,
    next_seqno,
    pubsub_signing_prefix,
    score_invalid_message,
    send_window_updates_by_halves,
    unblock_peer,
    wrap_upgrade_security,
)

__all__ = [
    "FORGET_SUBSCRIPTIONS",
    "GOSSIPSUB_CONSUME_RECORD",
    "GOSSIPSUB_SCORER",
    "HANDLE_DEAD_PEER",
    "HANDLE_RPC",
    "NEXT_SEQNO",
    "ON_INVALID_MESSAGE",
    "PEER_QUEUES",
    "PINNED_LIBP2P_VERSION",
    "PRIVATE_NAMES",
    "PUBSUB_CONSUME_RECORD",
    "QUEUE_MAX_SIZE",
    "READ_STREAM",
    "RPC_QUEUE_INNER",
    "SENDER_RECORD_TTL_S",
    "SEQNO_COUNTER",
    "SIGNING_PREFIX",
    "STREAM_HANDLER",
    "SWARM_UNBLOCK_PEER",
    "SWARM_UPGRADER",
    "TEARDOWN_IF_CONNECTED",
    "UPGRADE_SECURITY",
    "VERIFY_SENDER_RECORD",
    "WRITE_MSG",
    "YAMUX_RELEASE_ENV",
    "YAMUX_RELEASE_ON_READ",
    "YAMUX_WINDOW_UPDATE",
    "CompatPubsub",
    "batch_yamux_window_updates",
    "Kind",
    "LibP2PCompatError",
    "LibP2PVersionError",
    "PrivateName",
    "check_libp2p_version",
    "code_names",
    "installed_libp2p_version",
    "next_seqno",
    "pubsub_signing_prefix",
    "require",
    "resolve",
    "score_invalid_message",
    "send_window_updates_by_halves",
    "unblock_peer",
    "wrap_upgrade_security",
]
