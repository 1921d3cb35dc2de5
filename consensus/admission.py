"""Admission: the rules a signed message must pass before anyone relays it or acts on it.

One check per message type, shared by the gossip edge (`node.gossip_validation`, before a
message is relayed) and the consensus core (before a message is counted), so that a rule is
written once (docs/ARCHITECTURE.md, "Consensus core"). Each check returns None when the message
is admitted, else a stable kebab-case reason code from `REASONS` (a metric label value: never
free text). Pure: no I/O, no clock, no state beyond the genesis it is built from.

Rules, in the order they are checked (a message stops at the first that fails):

1. ``unknown-signer``: the signer is a genesis member holding the role the message needs (a
   vote, proposal, candidate or attestation needs a validator with power, a receipt a trainer).
2. ``wrong-chain``: a proposal's block header names this chain (other messages carry the chain
   id only inside their sign-bytes, so a foreign one fails rule 8 instead).
3. ``round-window``: ``0 <= round``, and ``round <= current_round + MAX_ROUND_AHEAD`` when the
   caller knows its round at the message's height. Rounds ahead are needed (Algorithm 1 lines
   55-56: f+1 messages of a later round start it), but not unboundedly many (memory).
4. ``not-proposer``: a proposal or candidate is signed by ``proposer_for(height, round)``.
5. ``valid-round``: a proposal's ``-1 <= valid_round < round`` (Algorithm 1 lines 22, 28).
6. ``height-mismatch``: a proposal's block is of the proposal's height.
7. Shape of the payload: ``report-mismatch`` (an attestation whose eval report is another
   evaluator's or for another candidate, or names its metric with more than
   ``MAX_METRIC_NAME`` characters), ``empty-candidate`` (a candidate without updates or
   without an aggregation rule), ``wrong-rule`` (a candidate declaring another aggregation rule
   than the genesis), ``bad-statistics`` (a receipt with ``n_samples <= 0`` or a negative
   privacy budget), ``samples-over-cap`` (a receipt claiming more samples than the genesis
   `Safeguards.max_samples_per_update`).
8. ``bad-signature``: the signature over `consensus.signing` sign-bytes verifies under the
   signer's genesis key. ``verify=False`` skips only this rule, for a caller that verifies
   later in a batch (`batch_verified`), as the core does for votes and attestations.

What is not here, because it depends on more than the message and the genesis: the gossip
edge's size limits, height window and replay cache; the core's height buffering, duplicate and
equivocation handling, base-model checks and `valid(v)` of the proposed block.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.codec import block_hash as compute_block_hash
from consensus.crypto import Verifier, batch_verify_same_message
from consensus.rejections import reasons_problem
from consensus.signing import proposal_bytes, report_bytes, sign_bytes
from consensus.types import (
    Attestation,
    Candidate,
    EvalReport,
    Genesis,
    Hash,
    Height,
    Proposal,
    Round,
    SignedMessage,
    UpdateReceipt,
    Vote,
)
from consensus.validators import ValidatorSet

MAX_ROUND_AHEAD = 1000
"""Messages for rounds further ahead of the caller's current round are refused (memory bound)."""

MAX_METRIC_NAME = 32
"""Longest `EvalReport.metric_name` admitted (metric names are short identifiers)."""

UNKNOWN_SIGNER = "unknown-signer"
WRONG_CHAIN = "wrong-chain"
ROUND_WINDOW = "round-window"
NOT_PROPOSER = "not-proposer"
VALID_ROUND = "valid-round"
HEIGHT_MISMATCH = "height-mismatch"
REPORT_MISMATCH = "report-mismatch"
EMPTY_CANDIDATE = "empty-candidate"
BAD_STATISTICS = "bad-statistics"
BAD_SIGNATURE = "bad-signature"
WRONG_RULE = "wrong-rule"
SAMPLES_OVER_CAP = "samples-over-cap"
BAD_REJECTIONS = "bad-rejections"

REASONS = (
    UNKNOWN_SIGNER,
    WRONG_CHAIN,
    ROUND_WINDOW,
    NOT_PROPOSER,
    VALID_ROUND,
    HEIGHT_MISMATCH,
    REPORT_MISMATCH,
    EMPTY_CANDIDATE,
    BAD_STATISTICS,
    BAD_SIGNATURE,
    WRONG_RULE,
    SAMPLES_OVER_CAP,
    BAD_REJECTIONS,
)
"""Every reason code an `Admission` check returns (closed: metric label values)."""


class Admission:
    """The admission checks of one chain.

    Args:
        chain_id: the genesis chain id (it is part of every sign-bytes).
        validator_set: the genesis members, their roles, power and proposer schedule.
        verifier: the signature verifier (`BlsVerifier` in a node, `FakeVerifier` in sims).
        rule: the genesis aggregation rule (None: any rule; for callers without a genesis).
        max_samples: the genesis cap on a receipt's sample count.
    """

    def __init__(
        self,
        chain_id: str,
        validator_set: ValidatorSet,
        verifier: Verifier,
        *,
        rule: str | None = None,
        max_samples: int | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.validator_set = validator_set
        self.verifier = verifier
        self.rule = rule
        self.max_samples = max_samples

    @classmethod
    def for_genesis(
        cls, genesis: Genesis, verifier: Verifier, validator_set: ValidatorSet | None = None
    ) -> Admission:
        """The admission checks of `genesis` (which the caller has validated)."""
        return cls(
            genesis.chain_id,
            validator_set or ValidatorSet(genesis.validators),
            verifier,
            rule=genesis.aggregation_rule,
            max_samples=genesis.safeguards.max_samples_per_update,
        )

    # -- one check per message type ----------------------------------------------------------

    def vote(
        self,
        vote: Vote,
        *,
        current_height: int | None = None,
        current_round: int | None = None,
        verify: bool = True,
    ) -> str | None:
        """Rules 1, 3, 8 for a prevote or precommit."""
        if not self.validator_set.is_validator(vote.signer):
            return UNKNOWN_SIGNER
        if not self._round_ok(vote.height, vote.round, current_height, current_round):
            return ROUND_WINDOW
        return self._signature_reason(vote, verify)

    def proposal(
        self,
        proposal: Proposal,
        *,
        current_height: int | None = None,
        current_round: int | None = None,
        verify: bool = True,
        block_hash: Hash | None = None,
    ) -> str | None:
        """Rules 1-6, 8 for a proposal; pass `block_hash` when already computed (it is costly)."""
        if not self.validator_set.is_validator(proposal.signer):
            return UNKNOWN_SIGNER
        if proposal.block.header.chain_id != self.chain_id:
            return WRONG_CHAIN
        if not self._round_ok(proposal.height, proposal.round, current_height, current_round):
            return ROUND_WINDOW
        if proposal.signer != self.validator_set.proposer_for(proposal.height, proposal.round):
            return NOT_PROPOSER
        if not -1 <= proposal.valid_round < proposal.round:
            return VALID_ROUND
        if proposal.block.header.height != proposal.height:
            return HEIGHT_MISMATCH
        if verify and not self.signature_ok(proposal, block_hash=block_hash):
            return BAD_SIGNATURE
        return None

    def receipt(self, receipt: UpdateReceipt, *, verify: bool = True) -> str | None:
        """Rules 1, 7, 8 for an update receipt."""
        if not self.validator_set.is_trainer(receipt.signer):
            return UNKNOWN_SIGNER
        if receipt.n_samples <= 0 or receipt.epsilon_spent < 0:
            return BAD_STATISTICS
        if self.max_samples is not None and receipt.n_samples > self.max_samples:
            return SAMPLES_OVER_CAP
        return self._signature_reason(receipt, verify)

    def candidate(
        self,
        candidate: Candidate,
        *,
        current_height: int | None = None,
        current_round: int | None = None,
        verify: bool = True,
    ) -> str | None:
        """Rules 1, 3, 4, 7, 8 for a candidate (its receipts are the caller's to check)."""
        if not self.validator_set.is_validator(candidate.signer):
            return UNKNOWN_SIGNER
        if not self._round_ok(candidate.height, candidate.round, current_height, current_round):
            return ROUND_WINDOW
        if candidate.signer != self.validator_set.proposer_for(candidate.height, candidate.round):
            return NOT_PROPOSER
        if not candidate.receipts or not candidate.rule:
            return EMPTY_CANDIDATE
        if self.rule is not None and candidate.rule != self.rule:
            return WRONG_RULE
        if reasons_problem(candidate.rejected, candidate.rejection_reasons) is not None:
            return BAD_REJECTIONS
        return self._signature_reason(candidate, verify)

    def attestation(self, attestation: Attestation, *, verify: bool = True) -> str | None:
        """Rules 1, 7, 8 for an attestation."""
        if not self.validator_set.is_validator(attestation.signer):
            return UNKNOWN_SIGNER
        report = attestation.report
        if (
            report.evaluator != attestation.signer
            or report.candidate_hash != attestation.candidate_hash
            or len(report.metric_name) > MAX_METRIC_NAME
        ):
            return REPORT_MISMATCH
        if verify and not self.report_signature_ok(report):
            return BAD_SIGNATURE
        return self._signature_reason(attestation, verify)

    def admit(
        self,
        message: SignedMessage,
        *,
        current_height: int | None = None,
        current_round: int | None = None,
        verify: bool = True,
    ) -> str | None:
        """The check of `message`'s type (rounds are ignored for receipts and attestations)."""
        if isinstance(message, Vote):
            return self.vote(
                message, current_height=current_height, current_round=current_round, verify=verify
            )
        if isinstance(message, Proposal):
            return self.proposal(
                message, current_height=current_height, current_round=current_round, verify=verify
            )
        if isinstance(message, Candidate):
            return self.candidate(
                message, current_height=current_height, current_round=current_round, verify=verify
            )
        if isinstance(message, UpdateReceipt):
            return self.receipt(message, verify=verify)
        return self.attestation(message, verify=verify)

    # -- signatures --------------------------------------------------------------------------

    def signature_ok(self, message: SignedMessage, *, block_hash: Hash | None = None) -> bool:
        """Rule 8 alone: True when `message.signature` is its signer's, over its sign-bytes.

        For a proposal, `block_hash` (when given) must be the hash of `message.block`.
        """
        if not 0 <= message.signer < len(self.validator_set):
            return False
        key = self.validator_set.public_keys[message.signer]
        return self.verifier.verify(key, self._sign_bytes(message, block_hash), message.signature)

    def report_signature_ok(self, report: EvalReport) -> bool:
        """True when the eval report's numbers are signed by its evaluator."""
        if not 0 <= report.evaluator < len(self.validator_set):
            return False
        key = self.validator_set.public_keys[report.evaluator]
        return self.verifier.verify(key, report_bytes(self.chain_id, report), report.signature)

    def batch_verified(self, messages: Sequence[Vote | Attestation]) -> list[bool]:
        """Rule 8 for many votes or attestations, one aggregate check per distinct sign-bytes.

        Returns one flag per message, in order; a signer outside the genesis is never valid.
        """
        groups: dict[bytes, list[int]] = {}
        members = len(self.validator_set)
        for i, message in enumerate(messages):
            if 0 <= message.signer < members:
                groups.setdefault(sign_bytes(self.chain_id, message), []).append(i)
        ok = [False] * len(messages)
        keys = self.validator_set.public_keys
        for sign_bytes_, indices in groups.items():
            results = batch_verify_same_message(
                self.verifier,
                [keys[messages[i].signer] for i in indices],
                sign_bytes_,
                [messages[i].signature for i in indices],
            )
            for i, good in zip(indices, results, strict=True):
                ok[i] = good
        return ok

    # -- helpers -----------------------------------------------------------------------------

    def _sign_bytes(self, message: SignedMessage, block_hash: Hash | None) -> bytes:
        if isinstance(message, Proposal):
            bhash = compute_block_hash(message.block) if block_hash is None else block_hash
            return proposal_bytes(self.chain_id, message, bhash)
        return sign_bytes(self.chain_id, message)

    def _signature_reason(self, message: SignedMessage, verify: bool) -> str | None:
        if verify and not self.signature_ok(message):
            return BAD_SIGNATURE
        return None

    @staticmethod
    def _round_ok(
        height: Height, round_: Round, current_height: int | None, current_round: int | None
    ) -> bool:
        if round_ < 0:
            return False
        if current_round is None or (current_height is not None and height != current_height):
            return True  # no bound known for this height's rounds
        return round_ <= current_round + MAX_ROUND_AHEAD
