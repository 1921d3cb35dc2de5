"""The node's libp2p network: gossip topics, blob exchange, block sync, peer gating.

See `node_network.NodeNetwork` for the facade the driver uses. Everything that touches
py-libp2p internals is in `libp2p_compat`, imported first so that a py-libp2p other than the
pinned version fails with a clear message before any other import of the library.
"""

from node.network import libp2p_compat  # noqa: F401  (the version check runs first)
from node.network.blob_exchange import BLOB_PROTOCOL, BlobUnavailableError
from node.network.block_sync import SYNC_PROTOCOL, SyncBatch
from node.network.counters import NetworkCounters
from node.network.framing import FramingError
from node.network.node_network import Handler, NetworkSettings, NodeNetwork, Validator
from node.network.topics import DEFAULT_SIZE_CAPS, Topic, size_caps_for

__all__ = [
    "BLOB_PROTOCOL",
    "DEFAULT_SIZE_CAPS",
    "size_caps_for",
    "SYNC_PROTOCOL",
    "BlobUnavailableError",
    "FramingError",
    "Handler",
    "NetworkCounters",
    "NetworkSettings",
    "NodeNetwork",
    "SyncBatch",
    "Topic",
    "Validator",
]
