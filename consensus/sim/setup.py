"""Genesis, keys and cores for one simulated chain.

Keys are derived from (seed, member) so that a run is reproducible; `signer="fake"` uses the
keyed-hash `FakeSigner` (fast, still detects forgery), `signer="bls"` real BLS12-381 keys.
Timeouts are the genesis defaults for the Tendermint steps, with a short update window and
attestation timeout: the fake app trains in about a second, and a window of a minute would
only stretch virtual time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from consensus import codec, signing
from consensus.core import ConsensusCore
from consensus.crypto import BlsSigner, BlsVerifier, FakeSigner, FakeVerifier, Signer, Verifier
from consensus.genesis import make_genesis, validate_genesis
from consensus.types import (
    Attestation,
    Block,
    Candidate,
    Genesis,
    Proposal,
    Timeouts,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
)
from consensus.validators import ValidatorSet

SIM_TIMEOUTS = Timeouts(update_window=4.0, attestation=3.0)
SIM_INITIAL_MODEL = hashlib.sha256(b"bcfl-sim-initial-model").digest()


@dataclass
class SimChain:
    """The shared, read-only parts of one simulated chain."""

    genesis: Genesis
    signers: list[Signer]
    verifier: Verifier
    validator_set: ValidatorSet
    extra: list[Signer] = dataclasses.field(default_factory=list)
    """Keys outside the genesis: a joiner's, a rotated member's new one."""
    sets: dict[int, ValidatorSet] = dataclasses.field(default_factory=dict)
    """The validator set of each committed height, once one differs from the genesis's."""

    def make_core(self, member: int, next_signers: tuple[Signer, ...] = ()) -> Any:
        """A fresh core for `member` (twins get two cores with the same key); a member past
        the genesis is a joiner that finds its index once governance adds it."""
        if member >= len(self.signers):
            signer = self.extra[member - len(self.signers)]
            return ConsensusCore(self.genesis, verifier=self.verifier, signer=signer)
        return ConsensusCore(
            self.genesis,
            verifier=self.verifier,
            me=ValidatorIndex(member),
            signer=self.signers[member],
            next_signers=next_signers,
        )

    def set_at(self, height: int) -> ValidatorSet:
        """The validator set that committed `height` (consensus/governance.py)."""
        return self.sets.get(height, self.validator_set)

    def sign(self, member: int, message: Any) -> Any:
        """Return `message` signed by `member` (used by Byzantine wrappers to re-sign)."""
        signature = self.signers[member].sign(sign_bytes(self.genesis.chain_id, message))
        return dataclasses.replace(message, signature=signature)

    def certificate_problem(self, block: Block, parent_model_hash: bytes) -> str | None:
        """None when a committed block may be on the chain as far as the model goes, else why.

        Checked independently of the core: a carry-over block keeps the parent's model and says
        why; a model block's certificate names >2/3 of the power, certifies exactly this
        block's candidate, and its aggregate verifies over the "improved" sign-bytes.
        """
        header = block.header
        certificate = block.improvement_certificate
        if certificate is None:
            if header.model_hash != parent_model_hash:
                return "carry-over block changes the model"
            if not block.carry_over_reason:
                return "carry-over block without a reason"
            return None
        expected = codec.candidate_id(
            header.height,
            parent_model_hash,
            header.model_hash,
            block.rule,
            block.receipts,
            block.rejected,
            block.rejection_reasons,
        )
        if certificate.candidate_hash != expected:
            return "improvement certificate is for another candidate"
        vset = self.set_at(int(header.height))
        signers = vset.indices(certificate.signers)
        if signers is None:
            return "malformed signer bitfield"
        if not vset.has_quorum(vset.power_of(signers)):
            return f"certificate signers {signers} hold no quorum of the power"
        message = signing.attestation_sign_bytes(
            self.genesis.chain_id, header.height, certificate.candidate_hash, True
        )
        keys = [vset.public_keys[i] for i in signers]
        if not self.verifier.verify_same_message(keys, message, certificate.aggregate_signature):
            return "improvement certificate aggregate signature does not verify"
        return None


def sign_bytes(chain_id: str, message: Any) -> bytes:
    """The bytes a member signs for a gossiped message (dispatch over consensus.signing)."""
    if isinstance(message, Vote):
        return signing.vote_bytes(chain_id, message)
    if isinstance(message, Proposal):
        return signing.proposal_bytes(chain_id, message, codec.block_hash(message.block))
    if isinstance(message, Attestation):
        return signing.attestation_bytes(chain_id, message)
    if isinstance(message, Candidate):
        return signing.candidate_bytes(chain_id, message)
    if isinstance(message, UpdateReceipt):
        return signing.receipt_bytes(chain_id, message)
    raise TypeError(f"{type(message).__name__} is not signed")


def _seed_bytes(seed: int, member: int) -> bytes:
    return hashlib.sha256(f"bcfl-sim-key|{seed}|{member}".encode()).digest()


def build_chain(validators: int, signer: str, seed: int, extra: int = 0) -> SimChain:
    """Keys, genesis and validator set for `validators` members (all validator + trainer),
    and `extra` keys outside the genesis."""
    signers: list[Signer]
    verifier: Verifier
    if signer == "bls":
        signers = [BlsSigner(_seed_bytes(seed, i)) for i in range(validators + extra)]
        verifier = BlsVerifier()
    else:
        fakes = [FakeSigner(_seed_bytes(seed, i)) for i in range(validators + extra)]
        signers = list(fakes)
        verifier = FakeVerifier.for_signers(fakes)
    signers, others = signers[:validators], signers[validators:]
    genesis = make_genesis(
        "bcfl-sim",
        signers,
        timeouts=SIM_TIMEOUTS,
        initial_model_hash=SIM_INITIAL_MODEL,
    )
    validator_set = validate_genesis(genesis, verifier)
    return SimChain(genesis, signers, verifier, validator_set, extra=others)
