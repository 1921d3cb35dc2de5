"""Evidence of a signed invalid proposal (docs/THREAT-MODEL.md "Evidence that costs nothing").

Most of valid(v) depends on chain state (the parent, the ledger, the member set of a height),
so a block that fails it proves nothing to a node that reads the evidence heights later. Some
rules need nothing but the genesis, and an honest proposer never breaks them, because it builds
its block from admitted messages with the genesis rule:

- the block declares an aggregation rule other than the genesis rule (rule swap);
- a receipt in it claims no samples, or more than the genesis cap (sample inflation).

A node that finds a signed proposal breaking one of these keeps the proposal's signed parts and
the block's canonical encoding (`InvalidProposalEvidence`); anyone can check it with the
proposer's key alone. The encoding is bounded (`MAX_EVIDENCE_BLOCK_BYTES`), and a block carries
at most `MAX_INVALID_PROPOSALS_PER_BLOCK` of them, so evidence never pushes a block past its cap;
an invalid proposal above that size is refused (nil prevote, counted) but not evidence.
"""

from __future__ import annotations

from consensus.codec import InvalidMessage, decode_as, encode, sha256
from consensus.crypto import Verifier
from consensus.signing import proposal_head_bytes
from consensus.types import Block, Genesis, InvalidProposalEvidence, Proposal
from consensus.validators import ValidatorSet

MAX_EVIDENCE_BLOCK_BYTES = 16 * 1024
"""Largest encoded block an invalid-proposal evidence may carry."""

MAX_INVALID_PROPOSALS_PER_BLOCK = 1
"""At most this many invalid-proposal evidences in one block."""


def objective_problem(genesis: Genesis, block: Block) -> str | None:
    """Why `block` breaks a rule that needs only the genesis to check, or None."""
    if block.rule and block.rule != genesis.aggregation_rule:
        return f"declares aggregation rule {block.rule[:40]!r}, not the genesis rule"
    cap = genesis.safeguards.max_samples_per_update
    for receipt in (*block.receipts, *block.rejected):
        if not 0 < receipt.n_samples <= cap:
            return f"receipt of member {receipt.author} claims {receipt.n_samples} samples"
    return None


def invalid_proposal_evidence(
    proposal: Proposal, genesis: Genesis
) -> InvalidProposalEvidence | None:
    """The evidence that `proposal` (its signature already checked) is objectively invalid, or
    None when it is not, or when its block is too large to carry."""
    if objective_problem(genesis, proposal.block) is None:
        return None
    block = encode(proposal.block)
    if len(block) > MAX_EVIDENCE_BLOCK_BYTES:
        return None
    return InvalidProposalEvidence(
        proposal.height,
        proposal.round,
        proposal.proposer,
        proposal.valid_round,
        block,
        proposal.signature,
    )


def evidence_problem(
    evidence: InvalidProposalEvidence,
    genesis: Genesis,
    validator_set: ValidatorSet,
    verifier: Verifier,
    max_height: int,
) -> str | None:
    """Why `evidence` does not prove that its proposer signed an objectively invalid block."""
    if len(evidence.block) > MAX_EVIDENCE_BLOCK_BYTES:
        return "invalid-proposal evidence with an oversized block"
    if not validator_set.is_validator(evidence.proposer):
        return "evidence against a non-validator"
    if not 1 <= evidence.height <= max_height or not -1 <= evidence.valid_round < evidence.round:
        return "evidence for an impossible height or round"
    try:
        block = decode_as(evidence.block, Block, max_size=MAX_EVIDENCE_BLOCK_BYTES)
    except InvalidMessage as exc:
        return f"invalid-proposal evidence whose block does not decode: {exc.reason}"
    if encode(block) != evidence.block:
        return "invalid-proposal evidence whose block is not canonically encoded"
    if block.header.height != evidence.height:
        return "invalid-proposal evidence whose block is for another height"
    if objective_problem(genesis, block) is None:
        return "invalid-proposal evidence for a block that breaks no objective rule"
    message = proposal_head_bytes(
        genesis.chain_id,
        evidence.height,
        evidence.round,
        sha256(evidence.block),
        evidence.valid_round,
    )
    key = validator_set.public_keys[evidence.proposer]
    if not verifier.verify(key, message, evidence.signature):
        return "evidence proposal signature does not verify"
    return None
