"""Domain bounds of the integers the codec accepts (docs/ARCHITECTURE.md "Wire and storage
formats"): a value outside them is a peer's lie, never a chain state.

Every other integer is bounded to int64 by the codec itself.
"""

from __future__ import annotations

from consensus.types import (
    EvalReport,
    Genesis,
    Header,
    Height,
    Privacy,
    Round,
    Safeguards,
    UpdateReceipt,
    ValidatorIndex,
)

MAX_HEIGHT = 2**48
MAX_ROUND = 2**32
MAX_MEMBERS = 2**16
MAX_TIME_MS = 2**50
"""Block times in Unix milliseconds end in year ~37 000; bounded so `time + 1` stays encodable."""
MAX_SAMPLES = 2**40
MAX_MODULUS_BITS = 62
"""Secure-aggregation sums stay below 2^62, so they fit int64 on every platform."""

# Domain integers have domain bounds: a value outside them is a peer's lie, never a chain state.
NEWTYPE_BOUNDS: dict[object, tuple[int, int]] = {
    Height: (0, MAX_HEIGHT),
    Round: (-1, MAX_ROUND),
    ValidatorIndex: (0, MAX_MEMBERS - 1),
}
# Plain int fields with tighter bounds than the int64 default.
FIELD_BOUNDS: dict[tuple[type, str], tuple[int, int]] = {
    (Header, "time_ms"): (0, MAX_TIME_MS),
    (Genesis, "genesis_time_ms"): (0, MAX_TIME_MS),
    (UpdateReceipt, "n_samples"): (0, MAX_SAMPLES),
    (EvalReport, "n_samples"): (0, MAX_SAMPLES),
    (Safeguards, "max_samples_per_update"): (1, MAX_SAMPLES),
    (Safeguards, "timestamp_precision_ms"): (0, MAX_TIME_MS),
    (Safeguards, "message_delay_ms"): (0, MAX_TIME_MS),
    (Privacy, "secagg_neighbours"): (0, MAX_MEMBERS),
    (Privacy, "secagg_threshold"): (0, MAX_MEMBERS),
    (Privacy, "secagg_quant_range"): (1, 2**MAX_MODULUS_BITS),
    (Privacy, "secagg_modulus_bits"): (1, MAX_MODULUS_BITS),
}

# Gossip size caps, bytes per message, per topic kind (node/network/topics.py). Proposals and
# candidates carry one receipt (and eval report) per member, so their caps grow with the member
# set; everything else is constant size (a re-proposal's polka is one aggregate and a bitfield).
GOSSIP_BASE_CAPS = {
    "consensus": 64 * 1024,
    "receipts": 16 * 1024,
    "candidates": 128 * 1024,
    "attestations": 32 * 1024,
    "governance": 16 * 1024,
    "secagg": 16 * 1024,
}
GOSSIP_PER_MEMBER_BYTES = {
    "consensus": 1024,
    "receipts": 0,
    "candidates": 512,
    "attestations": 0,
    "governance": 0,
    "secagg": 256,
}
GOSSIP_HARD_CAP = 512 * 1024
"""No cap exceeds this: half of py-libp2p's 1 MiB RPC limit leaves room for framing (an
oversized RPC silently kills the pubsub link, docs/libp2p-compat.md). At 1 KiB a member the
consensus cap reaches it at 448 members."""

MESSAGE_TOPIC_KINDS = {
    "Proposal": "consensus",
    "Vote": "consensus",
    "UpdateReceipt": "receipts",
    "Candidate": "candidates",
    "Attestation": "attestations",
    "EvalReport": "attestations",
    "GovernanceProposal": "governance",
    "GovernanceApproval": "governance",
}
"""The topic kind each gossiped message type travels on."""


def gossip_size_caps(members: int) -> dict[str, int]:
    """The byte cap of each topic kind for a member set of `members`."""
    return {
        kind: min(GOSSIP_HARD_CAP, base + GOSSIP_PER_MEMBER_BYTES[kind] * max(0, members))
        for kind, base in GOSSIP_BASE_CAPS.items()
    }
