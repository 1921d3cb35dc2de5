"""The closed sets of label values every bcfl metric may carry.

Prometheus stores one time series per distinct label set, so a label fed with
free text (a peer id, an exception message, a height) grows without bound and
eventually takes the monitoring server down. Every label of a bcfl metric is
therefore one of the small enums below, and `NodeMetrics` refuses anything else
with a `ValueError` (a caller passing free text is our bug, not a peer's).
Free-form reasons (e.g. `consensus.InvalidMessage.reason`) are mapped onto these
by the driver; a genuinely new reason is added here, in one place.

Reasons use hyphens like the learning engine's `validate_update` reasons; step,
phase and state names use underscores like the devnet JSON keys.
"""

from __future__ import annotations

from collections.abc import Mapping

from consensus.admission import REASONS as ADMISSION_REASONS
from consensus.errors import CORE_REASONS
from consensus.shell.phases import PHASES as PHASES

STEPS = ("propose", "prevote", "precommit", "commit")
"""Tendermint steps of a round, plus the commit step (decision -> block stored)."""


TOPICS = ("consensus", "receipts", "candidates", "attestations", "governance", "secagg")
"""Gossip topics, by the last segment of `bcfl/<chain>/<name>`."""

DIRECTIONS = ("in", "out")

GOSSIP_REJECT_REASONS = (
    "oversized",
    "undecodable",
    "schema",
    "bad-signature",
    "unknown-signer",
    "wrong-chain",
    "height-window",
    "duplicate",
    "rate-limited",
    "malformed-rpc",
    # admission rules that name an insider attack (docs/THREAT-MODEL.md), kept apart from
    # "invalid" so an operator sees which one was tried
    "samples-over-cap",
    "wrong-rule",
    "invalid",
)
"""Why a topic validator (or the guarded pubsub handler) dropped a message."""

SECAGG_REASONS = (
    "secagg-malformed",
    "secagg-second-draft",
    "secagg-threshold",
    "secagg-invalid",
    "secagg-equivocation",
)
"""Why the node's secure aggregation refused a draft or reveal (node/services/secagg_round.py)."""

CORE_REJECT_REASONS = (*ADMISSION_REASONS, *CORE_REASONS, *SECAGG_REASONS, "other")
"""Why the consensus core refused a message that passed the gossip edge, or a synced block
(`consensus.events.Rejected.reason`: consensus/admission.py's codes, then the core's own)."""

UPDATE_RESULTS = ("received", "accepted", "rejected")

UPDATE_REJECT_REASONS = (
    # learning.validate_update
    "undecodable",
    "missing-tensor",
    "unexpected-tensor",
    "shape-mismatch",
    "dtype-mismatch",
    "non-finite",
    "norm-exceeded",
    # the driver
    "wrong-base",
    "blob-unavailable",
    "bad-signature",
    "not-trainer",
    "duplicate",
    "late",
    "outlier",
)

PROPOSAL_RESULTS = ("sent", "accepted", "rejected")
VOTE_TYPES = ("prevote", "precommit")
VOTE_RESULTS = ("sent", "accepted", "rejected", "duplicate")
ATTESTATION_VERDICTS = ("improved", "not_improved", "refused")
EVIDENCE_KINDS = ("duplicate_vote", "double_proposal", "invalid_proposal")
"""`kind` of bcfl_byzantine_evidence_total: the evidence types of consensus/types.py."""
CERTIFICATE_KINDS = ("commit", "improvement")
BLOCK_KINDS = ("model", "carry_over")
MODEL_METRICS = ("auc", "accuracy", "rmse", "r2", "mae", "macro_f1", "macro_auc")
"""Task metrics of the learning engine's `evaluate` (loss has its own gauge)."""

SYNC_STATES = ("in_sync", "catching_up", "stalled")
BLOB_RESULTS = ("ok", "failed")
REFUSAL_REASONS = ("not-allowed", "too-many", "unsupported-key")
STORE_WRITE_KINDS = ("block", "blob", "signer_state", "ledger")


def check(label: str, value: str, allowed: tuple[str, ...]) -> str:
    """Return `value` if it is one of `allowed`, else raise ValueError naming the label."""
    if value not in allowed:
        raise ValueError(f"metric label {label}={value!r} is not one of {', '.join(allowed)}")
    return value


def topic_name(topic: str) -> str:
    """Accept `receipts` or `bcfl/<chain>/receipts`; return the checked short name."""
    return check("topic", topic.rsplit("/", 1)[-1], TOPICS)


def update_reason(reason: str) -> str:
    """Map an update rejection reason (learning's or the node's) onto UPDATE_REJECT_REASONS."""
    if reason == "unavailable":
        return "blob-unavailable"
    return reason if reason in UPDATE_REJECT_REASONS else "undecodable"


def core_reason(reason: str) -> str:
    """Map a core rejection reason onto CORE_REJECT_REASONS."""
    return reason if reason in CORE_REJECT_REASONS else "other"


def gossip_reason(reason: str) -> str:
    """Map a network or topic-validator rejection reason onto GOSSIP_REJECT_REASONS."""
    reason = reason.replace("_", "-")
    return reason if reason in GOSSIP_REJECT_REASONS else "invalid"


def by_closed_reason(rejected: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """Sum (topic, reason) rejection counts after mapping each reason with `gossip_reason`."""
    out: dict[tuple[str, str], int] = {}
    for (topic, reason), n in rejected.items():
        key = (topic, gossip_reason(reason))
        out[key] = out.get(key, 0) + n
    return out
