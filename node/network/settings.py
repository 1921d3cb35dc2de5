"""`NetworkSettings`: everything a `NodeNetwork` needs besides its key pair and store."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from node.config import TRANSPORTS
from node.network.topics import DEFAULT_SIZE_CAPS, Topic

__all__ = ["TRANSPORTS", "NetworkSettings", "TokenBucket"]


@dataclass(slots=True)
class NetworkSettings:
    """Everything the network needs besides the key pair and the store."""

    chain_id: str
    listen: str = "/ip4/127.0.0.1/tcp/0"
    bootstrap: list[str] = field(default_factory=list)  # multiaddrs with /p2p/<peer id>
    allowed_peers: Collection[str] | None = None  # genesis + observers; None = anyone
    size_caps: dict[Topic, int] = field(default_factory=lambda: dict(DEFAULT_SIZE_CAPS))
    rate_per_peer: float = 200.0  # messages per second a forwarder may send us, sustained
    burst_per_peer: float = 1000.0
    heartbeat_s: int = 1
    outbound_queue_size: int = 1024
    delivery_queue_size: int = 4096
    health_interval_s: float = 1.0
    redial_max_backoff_s: float = 10.0
    # Of two known peers, the one with the smaller peer id dials first; the other waits this
    # long before it dials too (the daemon sets 10 s for a genesis member) (one handshake per pair instead of two crossing ones; py-libp2p
    # upgrades one inbound connection at a time, and 31 at once timed out on 2 cores).
    dial_defer_s: float = 0.0
    dial_timeout_s: float = 5.0
    max_blob_bytes: int = 512 * 1024 * 1024
    blob_timeout_s: float = 10.0
    # D, D_low, D_high. py-libp2p's (6, 4, 12) is meant for thousands of peers; in a
    # consortium of 8-32 known sites it makes the mesh (nearly) complete, so every node
    # receives each message from almost every other node. 4 keeps 3-4 hops at 32 sites.
    gossip_degree: tuple[int, int, int] = (4, 3, 6)
    # "direct": our messages go straight to each connected peer (direct.py), no relay;
    # "gossip": through GossipSub, which relays (for a consortium that is not a full mesh).
    # Either way we accept both, each through the same topic validators.
    transport: str = "direct"
    # a blob up to this size is pushed with its receipt (direct transport only)
    max_blob_push: int = 256 * 1024
    # opening a direct stream, one write, one frame's arrival; a peer on a starved machine
    # answers a stream open in seconds (direct.py)
    direct_timeout_s: float = 15.0


class TokenBucket:
    """Messages a peer may send us: `rate` a second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
