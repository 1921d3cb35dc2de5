"""Domain-separated sign-bytes per message type: what each signature covers.

Sign-bytes are the canonical CBOR array `[domain tag, chain id, fields...]`. The domain tag
keeps a prevote from ever verifying as a precommit, a receipt, or a signature on another chain.
Votes for one (height, round, type, block) share their sign-bytes, so they aggregate into one
certificate and batch-verify with one pairing check.

This is the import path for signers and verifiers. The definitions live in `consensus.codec`,
next to the hashes they cover (a proposal signs its block hash, a candidate its candidate hash),
so that codec and signing do not import each other.
"""

from __future__ import annotations

from consensus.codec import (
    DOMAIN_ATTESTATION,
    DOMAIN_CANDIDATE,
    DOMAIN_PRECOMMIT,
    DOMAIN_PREVOTE,
    DOMAIN_PROPOSAL,
    DOMAIN_RECEIPT,
    attestation_bytes,
    attestation_sign_bytes,
    candidate_bytes,
    proposal_bytes,
    receipt_bytes,
    sign_bytes,
    vote_bytes,
    vote_sign_bytes,
)

__all__ = [
    "DOMAIN_ATTESTATION",
    "DOMAIN_CANDIDATE",
    "DOMAIN_PRECOMMIT",
    "DOMAIN_PREVOTE",
    "DOMAIN_PROPOSAL",
    "DOMAIN_RECEIPT",
    "attestation_bytes",
    "attestation_sign_bytes",
    "candidate_bytes",
    "proposal_bytes",
    "receipt_bytes",
    "sign_bytes",
    "vote_bytes",
    "vote_sign_bytes",
]
