"""What the consensus core hands its two sub-machines, and the one way either of them signs.

`ConsensusCore` (consensus/core.py) owns a `Tendermint` round machine and a `LearningRound`
per height and passes each of them a `Context`: the chain (genesis, validator set, admission
checks, `valid(v)`), this member's `Signatory` and the `EvidencePool`. Nothing else is shared,
so what a sub-machine may touch is spelled out here, not inherited (docs/ARCHITECTURE.md,
"Consensus core").

Every signature the core makes goes through `Signatory`, behind the double-sign guard of
`consensus.guard`; the guard's new state is emitted as `PersistSignerState` before the signed
message is returned, so the node makes it durable before the message leaves the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from consensus.admission import Admission
from consensus.crypto import Signer, Verifier
from consensus.events import Action, PersistSignerState
from consensus.governance import approval_sign_bytes, is_current, proposal_sign_bytes
from consensus.governance_pool import GovernancePool
from consensus.guard import SignerState, SignRefused, check_attest, check_sign, with_lock
from consensus.signing import (
    attestation_bytes,
    candidate_bytes,
    proposal_bytes,
    receipt_bytes,
    report_bytes,
    vote_bytes,
)
from consensus.types import (
    Attestation,
    Block,
    Candidate,
    Genesis,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    PolkaCertificate,
    Proposal,
    Round,
    Step,
    Timeouts,
    UpdateReceipt,
    ValidatorIndex,
    ValidatorInfo,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet
from consensus.validity import BlockChecker
from consensus.votes import EvidencePool


class Signatory:
    """This member's signing key behind its double-sign guard; observers have neither.

    Each `sign_*` method returns the signed message, or None when this node cannot sign (an
    observer) or the guard refuses (it would conflict with something signed before).
    """

    def __init__(
        self,
        chain_id: str,
        me: ValidatorIndex | None,
        signer: Signer | None,
        state: SignerState,
    ) -> None:
        self.chain_id = chain_id
        self.me = me
        self.signer = signer
        self.state = state

    def persist(self, new_state: SignerState, out: list[Action]) -> None:
        """Adopt a new guard state and ask the node to make it durable."""
        if new_state != self.state:
            self.state = new_state
            out.append(PersistSignerState(new_state))

    def lock(self, height: Height, round_: int, value: Hash, out: list[Action]) -> None:
        """Persist lockedRound and id(lockedValue) with the guard state (restarts stay locked)."""
        self.persist(with_lock(self.state, height, round_, value), out)

    def sign_vote(
        self,
        vote_type: VoteType,
        height: Height,
        round_: Round,
        value: Hash | None,
        out: list[Action],
    ) -> Vote | None:
        """⟨PREVOTE⟩ or ⟨PRECOMMIT, h, r, value⟩ (nil when `value` is None)."""
        if self.me is None or self.signer is None:
            return None
        step = Step.PREVOTE if vote_type == VoteType.PREVOTE else Step.PRECOMMIT
        try:
            state = check_sign(self.state, height, round_, step, value or b"")
        except SignRefused:
            return None
        vote = Vote(vote_type, height, round_, value, self.me)
        vote = replace(vote, signature=self.signer.sign(vote_bytes(self.chain_id, vote)))
        self.persist(state, out)
        return vote

    def sign_proposal(
        self,
        height: Height,
        round_: Round,
        block: Block,
        block_hash: Hash,
        valid_round: Round,
        polka: PolkaCertificate | None,
        out: list[Action],
    ) -> Proposal | None:
        """⟨PROPOSAL, h, r, v, vr⟩, carrying the round-vr polka it relies on (aggregated)."""
        if self.me is None or self.signer is None:
            return None
        try:
            state = check_sign(self.state, height, round_, Step.PROPOSE, block_hash)
        except SignRefused:
            return None
        proposal = Proposal(height, round_, block, valid_round, self.me)
        signature = self.signer.sign(proposal_bytes(self.chain_id, proposal, block_hash))
        proposal = replace(proposal, signature=signature, polka=polka)
        self.persist(state, out)
        return proposal

    def sign_receipt(self, receipt: UpdateReceipt) -> UpdateReceipt | None:
        """This trainer's update receipt (receipts are not guarded: one per height by design)."""
        if self.signer is None:
            return None
        return replace(receipt, signature=self.signer.sign(receipt_bytes(self.chain_id, receipt)))

    def sign_candidate(self, candidate: Candidate) -> Candidate | None:
        """The round proposer's candidate (its hash is what attestations certify)."""
        if self.signer is None:
            return None
        signature = self.signer.sign(candidate_bytes(self.chain_id, candidate))
        return replace(candidate, signature=signature)

    def sign_governance_proposal(self, proposal: GovernanceProposal) -> GovernanceProposal | None:
        """A member-set change proposed by this member (not guarded: each is its own id)."""
        if self.me is None or self.signer is None:
            return None
        proposal = replace(proposal, proposer=self.me)
        message = proposal_sign_bytes(self.chain_id, proposal)
        return replace(proposal, signature=self.signer.sign(message))

    def sign_governance_approval(self, approval: GovernanceApproval) -> GovernanceApproval | None:
        """This member's approval of a pending proposal."""
        if self.me is None or self.signer is None:
            return None
        approval = replace(approval, approver=self.me)
        message = approval_sign_bytes(self.chain_id, approval.proposal_id)
        return replace(approval, signature=self.signer.sign(message))

    def sign_attestation(self, attestation: Attestation, out: list[Action]) -> Attestation | None:
        """A verdict on a candidate; the guard allows one verdict per candidate."""
        if self.signer is None:
            return None
        try:
            state = check_attest(
                self.state, attestation.height, attestation.candidate_hash, attestation.improved
            )
        except SignRefused:
            return None
        report = attestation.report
        report = replace(report, signature=self.signer.sign(report_bytes(self.chain_id, report)))
        message = attestation_bytes(self.chain_id, attestation)
        attestation = replace(attestation, report=report, signature=self.signer.sign(message))
        self.persist(state, out)
        return attestation


@dataclass(frozen=True, slots=True)
class Context:
    """The chain and this member, as both sub-machines of the core see them."""

    genesis: Genesis
    validator_set: ValidatorSet
    verifier: Verifier
    admission: Admission
    checker: BlockChecker
    signatory: Signatory
    evidence: EvidencePool
    can_vote: bool
    """A validator with power: it votes, proposes and attests."""
    is_trainer: bool
    """A trainer: it trains on M(h-1) at every height and signs an update receipt."""
    governance: GovernancePool | None = None
    """Governance transactions waiting for a block (consensus/governance_pool.py)."""

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def timeouts(self) -> Timeouts:
        return self.genesis.timeouts

    @property
    def me(self) -> ValidatorIndex | None:
        """This member's index; None for an observer that holds no genesis key."""
        return self.signatory.me


def with_members(
    ctx: Context,
    verifier: Verifier,
    members: tuple[ValidatorInfo, ...],
    signers: Sequence[Signer],
    fixed_me: ValidatorIndex | None,
) -> Context:
    """`ctx` for the member set `members` (docs/ARCHITECTURE.md "Governance"): its validator
    set, admission and valid(v), and this node's index and key in it. The node signs with the
    one of `signers` that the set names (a rotated member switches to its new key at the
    activation height; a joiner finds its index once it is added); `fixed_me` pins the index.
    """
    vset = ctx.checker.set_for(members)
    keys = [bytes(m.public_key) for m in members]
    me, signer = fixed_me, None
    for candidate in signers:
        key = bytes(candidate.public_key)
        if key in keys and is_current(members[keys.index(key)]):
            found = ValidatorIndex(keys.index(key))
            if fixed_me is None or fixed_me == found:
                me, signer = found, candidate
                break
    ctx.signatory.me, ctx.signatory.signer = me, signer
    checker = BlockChecker(ctx.genesis, vset, verifier)
    checker.adopt_sets(ctx.checker)
    checker.privacy = ctx.checker.privacy  # the same genesis policy and accountant
    active = signer is not None and me is not None
    return replace(
        ctx,
        validator_set=vset,
        admission=Admission.for_genesis(ctx.genesis, verifier, vset),
        checker=checker,
        can_vote=active and me is not None and vset.is_validator(me),
        is_trainer=active and me is not None and vset.is_trainer(me),
    )
