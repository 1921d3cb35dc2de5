"""Gossip topics: `bcfl/<chain id>/<kind>` and the size cap of each kind.

Caps stay far below py-libp2p's 1 MiB RPC limit: an oversized RPC silently kills the pubsub
link between two peers (docs/libp2p-compat.md). Models and updates never travel by gossip; they
are blobs fetched over `/bcfl/blob/1.0.0`. Nor do committed blocks: a node that is behind
fetches them with their commit certificates by block sync (`block_sync.py`).
"""

from __future__ import annotations

import enum

from consensus.bounds import GOSSIP_BASE_CAPS, GOSSIP_HARD_CAP, gossip_size_caps


class Topic(enum.StrEnum):
    """The kinds of gossip message; the wire topic adds the chain id."""

    CONSENSUS = "consensus"  # proposals and votes
    RECEIPTS = "receipts"  # signed update receipts
    CANDIDATES = "candidates"  # candidate announcements
    ATTESTATIONS = "attestations"  # attestations and eval reports
    GOVERNANCE = "governance"  # member-set proposals and approvals (consensus/governance.py)
    SECAGG = "secagg"  # secure aggregation drafts and reveals (node/secagg_wire.py)

    def wire_name(self, chain_id: str) -> str:
        return f"bcfl/{chain_id}/{self.value}"


# Bytes per gossip message, per kind (consensus/bounds.py). A proposal's block carries receipts
# and certificates (no weights), one receipt and one eval report per member: the consortium's
# caps grow with its member set (`size_caps_for`), up to the hard cap.
DEFAULT_SIZE_CAPS: dict[Topic, int] = {Topic(kind): cap for kind, cap in GOSSIP_BASE_CAPS.items()}
HARD_SIZE_CAP = GOSSIP_HARD_CAP


def size_caps_for(members: int) -> dict[Topic, int]:
    """The caps of a consortium of `members` (what the daemon and the simulator both apply)."""
    return {Topic(kind): cap for kind, cap in gossip_size_caps(members).items()}
