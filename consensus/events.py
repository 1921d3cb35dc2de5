"""Events into and actions out of the consensus core (`ConsensusCore.handle(event, now)`).

Events are past-tense nouns: messages that arrived, timeouts that fired, answers of the local
learning app. Actions are imperatives the node executes IN ORDER (so `PersistSignerState` is
durable before the `Broadcast` carrying the new signature leaves the process).

The app side: `StartTraining` is answered (later, after training) with `TrainingFinished`;
`BuildCandidate` with `CandidateBuilt`; `EvaluateCandidate` with `CandidateEvaluated`. The core
signs the receipt, candidate and attestation itself. `RequestSync` asks the node to fetch
committed blocks from peers and feed them back as `BlockSynced`.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.guard import SignerState
from consensus.types import (
    Attestation,
    Block,
    Candidate,
    CommitCertificate,
    EvalReport,
    Evidence,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    Ledger,
    MemberChange,
    Proposal,
    Round,
    Step,
    UpdateReceipt,
    Vote,
)

Message = Proposal | Vote | UpdateReceipt | Candidate | Attestation
"""Everything the core gossips."""

# ------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """The node started the core; it begins the next height (emits timers, maybe training)."""


@dataclass(frozen=True, slots=True)
class ReceiptReceived:
    """An update receipt arrived from gossip."""

    receipt: UpdateReceipt


@dataclass(frozen=True, slots=True)
class TrainingFinished:
    """The node finished `StartTraining`; the core signs and gossips the receipt.

    `epsilon_spent` is this site's epsilon after this release, as its accountant counts every
    release it made; with the genesis DP policy on, the receipt carries the increment over
    the ledger's (consensus/privacy.py).
    """

    height: Height
    base_model_hash: Hash
    blob_hash: Hash
    n_samples: int
    train_loss: float
    epsilon_spent: float = 0.0


@dataclass(frozen=True, slots=True)
class CandidateBuilt:
    """The node's answer to `BuildCandidate` (fields round, proposer, signature are ignored).

    `reason` names why a candidate without receipts could not be built (e.g.
    `secagg-threshold`: too few reveals to unmask the sum); it becomes the carry-over reason."""

    candidate: Candidate
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CandidateReceived:
    """A candidate arrived from gossip."""

    candidate: Candidate


@dataclass(frozen=True, slots=True)
class CandidateEvaluated:
    """The node's answer to `EvaluateCandidate`; the verdict comes from learning/, not the core.

    A node that could not recompute the aggregation (mismatch, missing blob) answers
    improved=False.
    """

    candidate_hash: Hash
    improved: bool
    report: EvalReport


@dataclass(frozen=True, slots=True)
class AttestationReceived:
    """An attestation arrived from gossip."""

    attestation: Attestation


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A proposal arrived from gossip."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class VoteReceived:
    """A prevote or precommit arrived from gossip."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    """A timeout the core scheduled earlier has expired; stale ones are ignored."""

    height: Height
    round: Round
    step: Step


@dataclass(frozen=True, slots=True)
class BlockSynced:
    """A committed block fetched by sync; the core checks it and its certificate again."""

    block: Block
    commit_certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class GovernanceReceived:
    """A governance proposal or approval arrived from gossip (consensus/governance.py)."""

    tx: GovernanceProposal | GovernanceApproval


@dataclass(frozen=True, slots=True)
class GovernanceRequested:
    """This member's operator proposes `change` or approves the proposal `approve`."""

    change: MemberChange | None = None
    approve: Hash | None = None
    height: Height | None = None
    """The height a proposal names (default: the committed height), so the caller knows its id."""


Event = (
    Started
    | ReceiptReceived
    | TrainingFinished
    | CandidateBuilt
    | CandidateReceived
    | CandidateEvaluated
    | AttestationReceived
    | ProposalReceived
    | VoteReceived
    | TimeoutFired
    | BlockSynced
    | GovernanceReceived
    | GovernanceRequested
)

# ------------------------------------------------------------------------------------------
# Actions
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Gossip a message to every peer (the core has already processed it locally)."""

    message: Message


@dataclass(frozen=True, slots=True)
class BroadcastGovernance:
    """Gossip a governance proposal or approval (already in this node's pool)."""

    tx: GovernanceProposal | GovernanceApproval


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call `handle(TimeoutFired(height, round, step), now)` after `delay_seconds`."""

    height: Height
    round: Round
    step: Step
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class StartTraining:
    """Train the model `base_model_hash` for `height`; answer with `TrainingFinished`.

    With the genesis DP policy on, `dp_releases` and `dp_epsilon_spent` are this site's
    releases and epsilon as the parent ledger accounts them (consensus/privacy.py), and
    `dp_exhausted` says its budget allows no further release.
    """

    height: Height
    base_model_hash: Hash
    dp_releases: int = 0
    dp_epsilon_spent: float = 0.0
    dp_exhausted: bool = False


@dataclass(frozen=True, slots=True)
class BuildCandidate:
    """Validate the updates and aggregate them with the genesis rule; answer `CandidateBuilt`."""

    height: Height
    round: Round
    base_model_hash: Hash
    receipts: tuple[UpdateReceipt, ...]


@dataclass(frozen=True, slots=True)
class EvaluateCandidate:
    """Recompute the aggregation and evaluate it locally; answer `CandidateEvaluated`."""

    candidate: Candidate


@dataclass(frozen=True, slots=True)
class PersistSignerState:
    """Durably store the signer guard state before executing the next action."""

    state: SignerState


@dataclass(frozen=True, slots=True)
class Commit:
    """Store the decided block, its commit certificate and the ledger after it."""

    block: Block
    commit_certificate: CommitCertificate
    ledger: Ledger


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    """Equivocation detected: a duplicate vote or a double proposal (for metrics and logs; the
    core also includes it in a block)."""

    evidence: Evidence


@dataclass(frozen=True, slots=True)
class RequestSync:
    """Peers holding more than 1/3 of the power are at a later height: fetch blocks from
    `from_height` on and feed them back as `BlockSynced`."""

    from_height: Height


@dataclass(frozen=True, slots=True)
class Rejected:
    """A peer's message or a synced block was refused by the core.

    `reason` is a stable, short reason code (a metric label: `bad-signature`, `not-proposer`,
    `invalid-block`, ...); `detail` is free text for the log. The node counts these by reason.
    """

    reason: str
    detail: str = ""


Action = (
    Broadcast
    | BroadcastGovernance
    | ScheduleTimeout
    | StartTraining
    | BuildCandidate
    | EvaluateCandidate
    | PersistSignerState
    | Commit
    | ReportEvidence
    | RequestSync
    | Rejected
)


def received(message: Message) -> Event:
    """The event that delivers a gossiped `message` to a core."""
    if isinstance(message, Proposal):
        return ProposalReceived(message)
    if isinstance(message, Vote):
        return VoteReceived(message)
    if isinstance(message, UpdateReceipt):
        return ReceiptReceived(message)
    if isinstance(message, Candidate):
        return CandidateReceived(message)
    return AttestationReceived(message)
