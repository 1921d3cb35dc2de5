"""Plain counters the network keeps; the driver exports them as Prometheus metrics.

Label values are bounded: topics are the five fixed names, rejection reasons come from a
fixed vocabulary (ours plus the driver's validators'), never from peer input. Peer ids are
kept only in `malformed_by_peer`, whose size is bounded by the connection allow-list.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class NetworkCounters:
    """Message, byte, rejection, blob and connection counters of one `NodeNetwork`."""

    messages_in: Counter[str] = field(default_factory=Counter)  # by topic kind, delivered to us
    bytes_in: Counter[str] = field(default_factory=Counter)
    messages_out: Counter[str] = field(default_factory=Counter)  # by topic kind, published
    bytes_out: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic kind, reason)
    dropped_slow_consumer: Counter[str] = field(default_factory=Counter)
    malformed_rpc_frames: int = 0
    malformed_by_peer: Counter[str] = field(default_factory=Counter)
    refused_connections: int = 0
    refused_unsupported_key: int = 0  # RSA / secp256k1 identity keys (node/libp2p_extras.py)
    pubsub_repairs: int = 0
    redials: int = 0
    blob_fetches: Counter[str] = field(
        default_factory=Counter
    )  # by result: ok, not_found, busy, error
    blob_bytes_in: int = 0
    blob_bytes_out: int = 0
    blob_fetch_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    blob_serves: Counter[str] = field(default_factory=Counter)
    sync_requests_served: int = 0
    sync_blocks_fetched: int = 0
    stream_errors: Counter[str] = field(default_factory=Counter)  # by protocol kind
    # direct transport (direct.py): frames not sent, by cause; pushed blobs in, by outcome
    direct_dropped: Counter[str] = field(default_factory=Counter)
    blob_pushes: Counter[str] = field(default_factory=Counter)
