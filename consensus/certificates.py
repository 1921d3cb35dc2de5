"""Stand-alone certificate checks, for block sync, `bcfl chain verify` and the simulator's checker.

Thin wrappers over `consensus.validity.BlockChecker`; each returns None when the certificate
holds and a one-line reason when it does not.
"""

from __future__ import annotations

from consensus.crypto import Verifier
from consensus.types import Block, CommitCertificate, Genesis
from consensus.validators import ValidatorSet
from consensus.validity import BlockChecker


def _checker(
    genesis: Genesis, verifier: Verifier, validator_set: ValidatorSet | None
) -> BlockChecker:
    return BlockChecker(genesis, validator_set or ValidatorSet(genesis.validators), verifier)


def verify_improvement_certificate(
    genesis: Genesis,
    verifier: Verifier,
    block: Block,
    *,
    base_model_hash: bytes | None = None,
    validator_set: ValidatorSet | None = None,
) -> str | None:
    """Why the model block's improvement certificate is not valid, or None.

    `base_model_hash` is the parent's model; by default the base named by the block's receipts
    (their agreement with the parent is part of `valid(block)`, not of the certificate).
    """
    if block.improvement_certificate is None:
        return "no improvement certificate"
    if not block.receipts:
        return "model block without updates"
    base = base_model_hash if base_model_hash is not None else block.receipts[0].base_model_hash
    checker = _checker(genesis, verifier, validator_set)
    problem = checker.receipts_problem(
        (*block.receipts, *block.rejected), block.header.height, base
    )
    return problem or checker.improvement_certificate_problem(block, base)


def verify_commit_certificate(
    genesis: Genesis,
    verifier: Verifier,
    block_hash: bytes,
    certificate: CommitCertificate,
    *,
    validator_set: ValidatorSet | None = None,
) -> str | None:
    """Why `certificate` does not prove that >2/3 of the power precommitted `block_hash`."""
    if certificate.block_hash != block_hash:
        return "commit certificate is for another block"
    return _checker(genesis, verifier, validator_set).commit_certificate_problem(certificate)
