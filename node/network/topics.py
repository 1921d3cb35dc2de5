"""Gossip topics: `bcfl/<chain id>/<kind>` and the size cap of each kind.

Caps stay far below py-libp2p's 1 MiB RPC limit: an oversized RPC silently kills the pubsub
link between two peers (docs/libp2p-compat.md). Models and updates never travel by gossip; they
are blobs fetched over `/bcfl/blob/1.0.0`. Nor do committed blocks: a node that is behind
fetches them with their commit certificates by block sync (`block_sync.py`).
"""

from __future__ import annotations

import enum


class Topic(enum.StrEnum):
    """The kinds of gossip message; the wire topic adds the chain id."""

    CONSENSUS = "consensus"  # proposals and votes
    RECEIPTS = "receipts"  # signed update receipts
    CANDIDATES = "candidates"  # candidate announcements
    ATTESTATIONS = "attestations"  # attestations and eval reports
    GOVERNANCE = "governance"  # member-set proposals and approvals (consensus/governance.py)

    def wire_name(self, chain_id: str) -> str:
        return f"bcfl/{chain_id}/{self.value}"


# Bytes per gossip message, per kind. A proposal's block carries receipts and certificates
# (no weights).
DEFAULT_SIZE_CAPS: dict[Topic, int] = {
    Topic.CONSENSUS: 64 * 1024,
    Topic.RECEIPTS: 16 * 1024,
    Topic.CANDIDATES: 128 * 1024,
    Topic.ATTESTATIONS: 32 * 1024,
    Topic.GOVERNANCE: 16 * 1024,
}
HARD_SIZE_CAP = 512 * 1024  # no cap may exceed this: half the RPC limit leaves room for framing
