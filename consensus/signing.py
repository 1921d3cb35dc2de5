"""Domain-separated sign-bytes per message type: what each signature covers.

Sign-bytes are the canonical CBOR array `[domain tag, chain id, fields...]`. The domain tag
keeps a prevote from ever verifying as a precommit, a receipt, or a signature on another chain.
Votes for one (height, round, type, block) share their sign-bytes, so they aggregate into one
certificate and batch-verify with one pairing check. This module imports the codec (for the
canonical encoding and the hashes a signature covers); the codec never imports it.
"""

from __future__ import annotations

from consensus.codec import block_hash, candidate_hash, canonical
from consensus.types import (
    Attestation,
    Candidate,
    EvalReport,
    Hash,
    Height,
    Proposal,
    Round,
    SignedMessage,
    UpdateReceipt,
    Vote,
    VoteType,
)

DOMAIN_PREVOTE = "bcfl/prevote/v1"
DOMAIN_PRECOMMIT = "bcfl/precommit/v1"
DOMAIN_PROPOSAL = "bcfl/proposal/v1"
DOMAIN_RECEIPT = "bcfl/receipt/v1"
DOMAIN_CANDIDATE = "bcfl/candidate/v1"
DOMAIN_ATTESTATION = "bcfl/attestation/v1"
DOMAIN_EVAL_REPORT = "bcfl/eval-report/v1"


def vote_sign_bytes(
    chain_id: str, vote_type: VoteType, height: Height, round_: Round, block_hash: Hash | None
) -> bytes:
    """What a prevote or precommit signs (nil is CBOR null)."""
    domain = DOMAIN_PREVOTE if vote_type == VoteType.PREVOTE else DOMAIN_PRECOMMIT
    return canonical([domain, chain_id, height, round_, block_hash])


def vote_bytes(chain_id: str, vote: Vote) -> bytes:
    """Sign-bytes of a vote."""
    return vote_sign_bytes(chain_id, vote.vote_type, vote.height, vote.round, vote.block_hash)


def proposal_bytes(chain_id: str, proposal: Proposal, block_hash: Hash) -> bytes:
    """What a proposer signs: ⟨PROPOSAL, h, r, id(v), vr⟩."""
    return proposal_head_bytes(
        chain_id, proposal.height, proposal.round, block_hash, proposal.valid_round
    )


def proposal_head_bytes(
    chain_id: str, height: int, round_: int, block_hash: bytes, valid_round: int
) -> bytes:
    """`proposal_bytes` from its parts, as double-proposal evidence is checked."""
    return canonical([DOMAIN_PROPOSAL, chain_id, height, round_, block_hash, valid_round])


def receipt_bytes(chain_id: str, receipt: UpdateReceipt) -> bytes:
    """What a trainer signs for its update."""
    return canonical(
        [
            DOMAIN_RECEIPT,
            chain_id,
            receipt.author,
            receipt.height,
            receipt.base_model_hash,
            receipt.blob_hash,
            receipt.n_samples,
            float(receipt.train_loss),
            float(receipt.epsilon_spent),
        ]
    )


def candidate_bytes(chain_id: str, candidate: Candidate) -> bytes:
    """What a proposer signs when it gossips a candidate."""
    return canonical(
        [DOMAIN_CANDIDATE, chain_id, candidate.round, candidate.proposer, candidate_hash(candidate)]
    )


def attestation_sign_bytes(
    chain_id: str, height: Height, candidate_hash_: Hash, improved: bool
) -> bytes:
    """What an attester signs: the verdict only (all "improved" signers sign one message)."""
    return canonical([DOMAIN_ATTESTATION, chain_id, height, candidate_hash_, improved])


def attestation_bytes(chain_id: str, attestation: Attestation) -> bytes:
    """Sign-bytes of an attestation."""
    return attestation_sign_bytes(
        chain_id, attestation.height, attestation.candidate_hash, attestation.improved
    )


def report_bytes(chain_id: str, report: EvalReport) -> bytes:
    """What an evaluator signs for its numbers and the name of the metric they measure (the
    candidate hash binds height and model)."""
    return canonical(
        [
            DOMAIN_EVAL_REPORT,
            chain_id,
            report.evaluator,
            report.candidate_hash,
            report.n_samples,
            float(report.loss_before),
            float(report.loss_after),
            float(report.metric_before),
            float(report.metric_after),
            report.metric_name,
        ]
    )


def sign_bytes(chain_id: str, message: SignedMessage) -> bytes:
    """The exact bytes `Signer.sign` is given for any signed message."""
    if isinstance(message, Vote):
        return vote_bytes(chain_id, message)
    if isinstance(message, Proposal):
        return proposal_bytes(chain_id, message, block_hash(message.block))
    if isinstance(message, Attestation):
        return attestation_bytes(chain_id, message)
    if isinstance(message, UpdateReceipt):
        return receipt_bytes(chain_id, message)
    if isinstance(message, Candidate):
        return candidate_bytes(chain_id, message)
    raise TypeError(f"{type(message).__name__} is not a signed message")
