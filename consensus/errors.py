"""Who is to blame: our bug, or a peer's fault.

The consensus core splits errors like h11 does. A state the algorithm rules out is our own bug:
`ConsensusInvariantError`, raised so the node stops loudly instead of signing on from a corrupt
state. A peer's bad message is never an exception inside the core: the core drops it and says
so with a `consensus.events.Rejected` action whose `reason` is a stable code. The codes of the
per-message admission rules live in `consensus.admission`; the codes below are the core's own,
for what only a node that holds the chain state can decide.
"""

from __future__ import annotations

from consensus.admission import (
    BAD_STATISTICS,
    EMPTY_CANDIDATE,
    NOT_PROPOSER,
    REPORT_MISMATCH,
    ROUND_WINDOW,
    UNKNOWN_SIGNER,
    VALID_ROUND,
)
from consensus.events import Rejected
from consensus.privacy import DP_BUDGET, DP_INCREMENT, DP_NOISE_SHARES


class ConsensusInvariantError(Exception):
    """Our own bug: the core reached a state the algorithm rules out. Stop loudly."""


INVALID_BLOCK = "invalid-block"
"""A proposed block fails Algorithm 1's valid(v) (`consensus.validity.BlockChecker`)."""

WRONG_BASE = "wrong-base"
"""A receipt or candidate built on another model than the committed one, M(h-1)."""

INVALID_RECEIPTS = "invalid-receipts"
"""A candidate whose update receipts cannot be aggregated at this height."""

SYNC_MISMATCH = "sync-mismatch"
"""A synced block and the commit certificate sent with it are for different blocks."""

SYNC_INVALID = "sync-invalid"
"""A synced block whose commit certificate or body does not verify."""

UNTIMELY_PROPOSAL = "untimely-proposal"
"""A fresh proposal whose block time is outside the genesis precision and message delay of the
receiver's clock (proposer-based timestamps, consensus/tendermint.py `_timely`)."""

BAD_POLKA = "bad-polka"
"""A re-proposal whose polka certificate does not prove >2/3 prevotes for its block in its valid
round (malformed bitfield, too little power, or an aggregate that does not verify)."""
GOVERNANCE_INVALID = "governance-invalid"
"""A governance proposal or approval that cannot go on chain (consensus/governance.py)."""

CORE_REASONS = (
    INVALID_BLOCK,
    WRONG_BASE,
    INVALID_RECEIPTS,
    SYNC_MISMATCH,
    SYNC_INVALID,
    UNTIMELY_PROPOSAL,
    BAD_POLKA,
    DP_BUDGET,
    DP_INCREMENT,
    DP_NOISE_SHARES,
    GOVERNANCE_INVALID,
)
"""The reason codes of `Rejected` actions beyond `consensus.admission.REASONS`."""

_DETAILS = {
    ("vote", UNKNOWN_SIGNER): "vote from a non-validator",
    ("vote", ROUND_WINDOW): "vote for an impossible round",
    ("proposal", UNKNOWN_SIGNER): "proposal from a non-validator",
    ("proposal", ROUND_WINDOW): "proposal for an impossible round",
    ("proposal", NOT_PROPOSER): "proposal from a member who is not the round's proposer",
    ("proposal", VALID_ROUND): "proposal with an impossible valid round",
    ("receipt", UNKNOWN_SIGNER): "receipt from a member who is not a trainer",
    ("receipt", BAD_STATISTICS): "receipt with impossible statistics",
    ("candidate", ROUND_WINDOW): "candidate refused: impossible round",
    ("candidate", NOT_PROPOSER): "candidate refused: not from the round's proposer",
    ("candidate", EMPTY_CANDIDATE): "candidate refused: no updates or no rule",
    ("attestation", UNKNOWN_SIGNER): "attestation from a non-validator",
    ("attestation", REPORT_MISMATCH): "attestation whose report is someone else's",
}


def refusal(kind: str, reason: str) -> Rejected:
    """The `Rejected` action for a `kind` of message ("vote", "receipt", ...) that failed an
    admission rule: the rule's code, and a sentence for the log."""
    return Rejected(reason, _DETAILS.get((kind, reason), f"{kind} refused: {reason}"))
