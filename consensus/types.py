"""Domain types of the proof-of-learning BFT chain.

See docs/ARCHITECTURE.md "Blocks, certificates and the ledger".

Every type here is a frozen, slotted dataclass so that a value can be shared between the core,
the codec and the node without defensive copies. Domain integers and hashes are `NewType`s.

Choices where the issue is silent :

- Heights start at 1; height 0 is the genesis, whose hash is the parent of block 1.
- Member indices (`ValidatorIndex`) index `Genesis.validators`, which lists every member of the
  federation: validators (power > 0, role "validator"), trainers and observers. A trainer-only
  member has power 0, signs update receipts, and never votes.
- Eval reports ride in the block body next to the improvement certificate rather than inside it,
  so that the certificate's size stays 32 + 96 + ceil(n/8) bytes whatever n is. Attestation
  signatures cover the verdict (candidate hash, improved), so that all "improved" attestations
  sign one message and the certificate is checked with a single aggregate verification; each
  report's numbers carry their own signature by the evaluator (`EvalReport.signature`), checked
  by valid(v), so nobody can put numbers in another validator's mouth.
- A carry-over block keeps the parent's model hash, carries no improvement certificate and records
  why (`carry_over_reason`, non-empty); it includes no update receipts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from consensus.evidence_types import INVALID_PROPOSAL_OFFENCE as INVALID_PROPOSAL_OFFENCE
from consensus.evidence_types import PROPOSAL_OFFENCE as PROPOSAL_OFFENCE
from consensus.evidence_types import DuplicateProposalEvidence as DuplicateProposalEvidence
from consensus.evidence_types import DuplicateVoteEvidence as DuplicateVoteEvidence
from consensus.evidence_types import Evidence as Evidence
from consensus.evidence_types import InvalidProposalEvidence as InvalidProposalEvidence
from consensus.evidence_types import ProposalHead as ProposalHead
from consensus.evidence_types import Vote as Vote
from consensus.evidence_types import VoteType as VoteType
from consensus.members import (
    CHANGE_ADD,
    CHANGE_KINDS,
    CHANGE_POWER,
    CHANGE_REMOVE,
    CHANGE_ROTATE,
    EMPTY_SIGNATURE,
    HASH_SIZE,
    PUBLIC_KEY_SIZE,
    ROLE_OBSERVER,
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    ROLES,
    SIGNATURE_SIZE,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    MemberChange,
    PendingProposal,
    PublicKey,
    Round,
    ScheduledChange,
    Signature,
    ValidatorIndex,
    ValidatorInfo,
)
from consensus.policies import Privacy as Privacy
from consensus.policies import Safeguards as Safeguards
from consensus.policies import Timeouts as Timeouts
from consensus.policies import VerdictRule as VerdictRule

__all__ = [  # the names of consensus/members.py, re-exported
    "CHANGE_ADD",
    "CHANGE_KINDS",
    "CHANGE_POWER",
    "CHANGE_REMOVE",
    "CHANGE_ROTATE",
    "EMPTY_SIGNATURE",
    "GovernanceApproval",
    "GovernanceProposal",
    "HASH_SIZE",
    "Hash",
    "Height",
    "MemberChange",
    "PUBLIC_KEY_SIZE",
    "PendingProposal",
    "PublicKey",
    "ROLES",
    "ROLE_OBSERVER",
    "ROLE_TRAINER",
    "ROLE_VALIDATOR",
    "Round",
    "SIGNATURE_SIZE",
    "ScheduledChange",
    "Signature",
    "ValidatorIndex",
    "ValidatorInfo",
]


class Signed(Protocol):
    """A message signed by one genesis member: who signed it, and the signature.

    Every signed message type satisfies it (`SignedMessage`), whatever its own field for the
    signer is called on the wire (`validator`, `author`, `proposer` or `signer`).
    """

    @property
    def signer(self) -> ValidatorIndex:
        """The member index whose key made `signature`."""
        ...

    @property
    def signature(self) -> Signature:
        """The signature over the message's sign-bytes (`consensus.signing`)."""
        ...


class Step(enum.IntEnum):
    """Round step of Algorithm 1, plus the two timeout kinds of the proof-of-learning phase.

    The state machine is only ever in PROPOSE, PREVOTE or PRECOMMIT; UPDATE_WINDOW and
    ATTESTATION name timeouts (`TimeoutFired.step`).
    """

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2
    UPDATE_WINDOW = 3
    ATTESTATION = 4


@dataclass(frozen=True, slots=True)
class PolkaCertificate:
    """>2/3 of voting power prevoted a re-proposal's block in its valid round: bitfield + one
    aggregate (every prevote for one block in one round signs the same bytes, so their BLS
    signatures aggregate; the keys' proofs of possession make that safe). Constant size but for
    the ceil(n/8)-byte bitfield, where carrying the prevotes themselves grew by ~200 B a member."""

    round: Round
    signers: bytes
    aggregate_signature: Signature


# --------------------------------------------------------------------------------------------
# Proof of learning messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateReceipt:
    """A trainer's signed claim that it trained the base model into the update `blob_hash`.

    The update itself is a content-addressed safetensors blob fetched on demand.
    `epsilon_spent` is the differential-privacy budget this update spent (0.0 without DP).
    """

    author: ValidatorIndex
    height: Height
    base_model_hash: Hash
    blob_hash: Hash
    n_samples: int
    train_loss: float
    epsilon_spent: float
    signature: Signature = EMPTY_SIGNATURE

    @property
    def signer(self) -> ValidatorIndex:
        """The trainer who signed the receipt (`author`)."""
        return self.author


@dataclass(frozen=True, slots=True)
class Candidate:
    """A proposer's aggregation of update receipts into a new model (proof of learning, step 2).

    `receipts` are the accepted updates, `rejected` those the proposer refused (for example an
    update that failed validation); `rule` names the aggregation rule used. The candidate's
    identity (`candidate_hash`) covers height, base, model, rule and receipts, not the round or
    proposer, so attestations for one aggregation are reusable by a later round's proposer.
    """

    height: Height
    round: Round
    proposer: ValidatorIndex
    base_model_hash: Hash
    model_hash: Hash
    receipts: tuple[UpdateReceipt, ...]
    rejected: tuple[UpdateReceipt, ...]
    rule: str
    signature: Signature = EMPTY_SIGNATURE
    rejection_reasons: tuple[str, ...] = ()
    """One code per `rejected` receipt, in order (consensus/rejections.py)."""

    @property
    def signer(self) -> ValidatorIndex:
        """The round's proposer, who signed the candidate (`proposer`)."""
        return self.proposer


@dataclass(frozen=True, slots=True)
class EvalReport:
    """One validator's numbers for a candidate on its local validation split.

    `metric_name` names the metric that decided the verdict and that `metric_before` /
    `metric_after` hold: the genesis verdict metric, or "loss" where that metric is undefined on
    this validator's split (AUC on a one-class split). Admission bounds its length.
    """

    evaluator: ValidatorIndex
    candidate_hash: Hash
    n_samples: int
    loss_before: float
    loss_after: float
    metric_before: float
    metric_after: float
    metric_name: str = "loss"
    signature: Signature = EMPTY_SIGNATURE
    """The evaluator's signature over these numbers and the metric's name
    (`consensus.signing.report_bytes`)."""

    @property
    def signer(self) -> ValidatorIndex:
        """The validator who measured and signed the numbers (`evaluator`)."""
        return self.evaluator


@dataclass(frozen=True, slots=True)
class Attestation:
    """A validator's signed verdict on a candidate (proof of learning, step 3).

    Its `signer` field is the `Signed.signer` of the other message types.
    """

    height: Height
    candidate_hash: Hash
    improved: bool
    signer: ValidatorIndex
    report: EvalReport
    signature: Signature = EMPTY_SIGNATURE


@dataclass(frozen=True, slots=True)
class ImprovementCertificate:
    """>2/3 of voting power attested that the candidate improved: bitfield + one aggregate."""

    candidate_hash: Hash
    signers: bytes  # bitfield over Genesis.validators, ceil(n/8) bytes, bit i = byte i//8, 1 << i%8
    aggregate_signature: Signature


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """>2/3 of voting power precommitted `block_hash` in `round`: bitfield + one aggregate."""

    height: Height
    round: Round
    block_hash: Hash
    signers: bytes
    aggregate_signature: Signature


# --------------------------------------------------------------------------------------------
# Tendermint messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """Block header; `time_ms` is the proposer's clock, strictly above the parent's."""

    chain_id: str
    height: Height
    round: Round
    time_ms: int
    parent_hash: Hash
    proposer: ValidatorIndex
    model_hash: Hash
    updates_root: Hash
    last_commit_hash: Hash
    ledger_root: Hash


@dataclass(frozen=True, slots=True)
class Block:
    """A block: header plus body (docs/ARCHITECTURE.md "Blocks, certificates and the ledger")."""

    header: Header
    receipts: tuple[UpdateReceipt, ...]
    rejected: tuple[UpdateReceipt, ...]
    rule: str
    improvement_certificate: ImprovementCertificate | None
    eval_reports: tuple[EvalReport, ...]
    carry_over_reason: str
    last_commit: CommitCertificate | None
    evidence: tuple[DuplicateVoteEvidence, ...]
    proposals: tuple[GovernanceProposal, ...] = ()
    """Member-set changes proposed in this block (consensus/governance.py)."""
    approvals: tuple[GovernanceApproval, ...] = ()
    """Approvals of pending member-set changes carried by this block."""
    rejection_reasons: tuple[str, ...] = ()
    """One code per `rejected` receipt, in order (consensus/rejections.py)."""
    proposal_evidence: tuple[DuplicateProposalEvidence, ...] = ()
    """Double proposals this block punishes (`evidence` holds the duplicate votes)."""
    invalid_proposals: tuple[InvalidProposalEvidence, ...] = ()
    """Signed proposals of objectively invalid blocks this block punishes."""

    @property
    def all_evidence(self) -> tuple[Evidence, ...]:
        """Duplicate votes, double proposals, invalid proposals: every offence punished here."""
        return (*self.evidence, *self.proposal_evidence, *self.invalid_proposals)

    @property
    def height(self) -> Height:
        """The block's height."""
        return self.header.height

    @property
    def is_carry_over(self) -> bool:
        """True when the block keeps the parent's model."""
        return self.improvement_certificate is None


@dataclass(frozen=True, slots=True)
class Proposal:
    """Algorithm 1's PROPOSAL message: ⟨PROPOSAL, h, r, v, vr⟩ signed by proposer(h, r).

    A re-proposal (vr >= 0) carries the prevotes of round vr for the block that the proposer
    holds, aggregated (`polka`, the "proof of lock" of earlier Tendermint versions): a node
    that missed some of them (they may come from a validator that has since gone quiet) can
    still check line 28's "2f+1 prevotes in round vr". They are signed by their validators, so
    the proposal's own signature does not cover them.
    """

    height: Height
    round: Round
    block: Block
    valid_round: Round  # -1 when the block was not re-proposed from an earlier polka
    proposer: ValidatorIndex
    signature: Signature = EMPTY_SIGNATURE
    polka: PolkaCertificate | None = None

    @property
    def signer(self) -> ValidatorIndex:
        """The round's proposer, who signed the proposal (`proposer`)."""
        return self.proposer


SignedMessage = Vote | Proposal | UpdateReceipt | Candidate | Attestation
"""Every message type signed by a single member; each satisfies `Signed`."""


# --------------------------------------------------------------------------------------------
# Genesis
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Genesis:
    """Everything every node agrees on before block 1.

    `task` and `aggregation_params` are opaque canonical maps (str keys, CBOR-primitive values)
    interpreted by learning/. `expected_trainers` receipts close the update window at once; at the
    window timeout the proposer needs receipts from strictly more than 2/3 of that number.
    """

    chain_id: str
    validators: tuple[ValidatorInfo, ...]
    task: dict[str, Any]
    aggregation_rule: str
    aggregation_params: dict[str, Any]
    verdict_rule: VerdictRule
    timeouts: Timeouts
    initial_model_hash: Hash
    expected_trainers: int
    genesis_time_ms: int = 0
    safeguards: Safeguards = Safeguards()
    privacy: Privacy = Privacy()


# --------------------------------------------------------------------------------------------
# Ledger (chain state)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParticipantRecord:
    """Per-member ledger entry."""

    accepted_updates: int = 0
    rejected_updates: int = 0
    samples_contributed: int = 0
    reputation: int = 0
    epsilon_spent: float = 0.0
    slashed: int = 0
    last_update_height: int = 0
    """The last height whose block included an update of this member (0: none yet)."""


@dataclass(frozen=True, slots=True)
class Ledger:
    """The chain's state after a block: one record per member, plus punished offences.

    `punished` lists (validator, height, round, vote type) of evidence already applied, so one
    offence is slashed once. `members` is the member set that committed this block (the genesis
    members at height 0); the set of the next height is `members` with the `scheduled` changes
    due there applied (`consensus.governance.next_members`). `pending` holds the proposals
    waiting for approvals. Members are only ever appended: an index names one member forever
    (consensus/governance.py).
    """

    height: Height
    model_hash: Hash
    participants: tuple[ParticipantRecord, ...]
    punished: tuple[tuple[int, int, int, int], ...] = field(default=())
    members: tuple[ValidatorInfo, ...] = ()
    pending: tuple[PendingProposal, ...] = ()
    scheduled: tuple[ScheduledChange, ...] = ()
    decided: tuple[Hash, ...] = ()
    """Ids of proposals approved inside the proposal window (so none is carried twice)."""
    decided_at: tuple[Height, ...] = ()
    """The height each `decided` proposal names."""
