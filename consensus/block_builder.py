"""The blocks getValue() returns: a model block or a carry-over, on the committed parent.

The learning round (consensus/learning_round.py) decides which block its proposer proposes;
this module assembles it so that valid(v) (`consensus.validity.BlockChecker.block_problem`)
holds at every honest node: the parent link and its commit certificate, the updates root,
pending equivocation evidence, the governance transactions of the pool still valid on the
parent (consensus/governance_pool.py), and the ledger root after the block.

With the genesis DP policy on, a carry-over block includes the update receipts the proposer
holds (signatures checked), so that the ledger accounts the privacy those releases spent even
though no model was certified (docs/THREAT-MODEL.md "Differential privacy").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from consensus.codec import commit_hash, ledger_root, updates_root
from consensus.context import Context
from consensus.errors import ConsensusInvariantError
from consensus.invalid_proposal import MAX_INVALID_PROPOSALS_PER_BLOCK
from consensus.ledger import apply_block
from consensus.types import (
    HASH_SIZE,
    Attestation,
    Block,
    Candidate,
    CommitCertificate,
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
    EvalReport,
    Hash,
    Header,
    Height,
    ImprovementCertificate,
    InvalidProposalEvidence,
    Round,
    UpdateReceipt,
    ValidatorIndex,
)
from consensus.validity import Parent

MAX_EVIDENCE_IN_BLOCK = 8


class BlockBuilder:
    """Blocks of one height, proposed by this member."""

    def __init__(
        self,
        height: Height,
        parent: Parent,
        last_commit: Callable[[], CommitCertificate | None],
        ctx: Context,
        released: Mapping[ValidatorIndex, UpdateReceipt] | None = None,
    ) -> None:
        """`last_commit` gives the parent's commit certificate as it stands when a block is
        built (late precommits included, consensus/late_commit.py)."""
        self._height = height
        self._parent = parent
        self._last_commit = last_commit
        self._ctx = ctx
        self._released = released  # the height's receipts so far (the learning state's)

    def model_block(
        self,
        round_: Round,
        candidate_hash: Hash,
        candidate: Candidate,
        attestations: Sequence[Attestation],
        now: float,
    ) -> Block:
        """P4: the candidate's model, certified by these verified "improved" attestations."""
        certificate = ImprovementCertificate(
            candidate_hash=candidate_hash,
            signers=self._ctx.validator_set.bitfield(a.signer for a in attestations),
            aggregate_signature=self._ctx.verifier.aggregate([a.signature for a in attestations]),
        )
        return self._build(
            round_,
            now,
            model_hash=candidate.model_hash,
            receipts=candidate.receipts,
            rejected=candidate.rejected,
            rule=candidate.rule,
            certificate=certificate,
            rejection_reasons=candidate.rejection_reasons,
            reports=self._signed_reports(attestations),
            reason="",
        )

    def _signed_reports(self, attestations: Sequence[Attestation]) -> tuple[EvalReport, ...]:
        """The attesters' reports whose numbers their evaluators signed (a forged report is
        left out: the verdict's signature does not cover the numbers)."""
        reports = [a.report for a in attestations]
        bad = {id(r) for r in self._ctx.checker.bad_report_signatures(reports)}
        return tuple(r for r in reports if id(r) not in bad)

    def carry_over(self, round_: Round, reason: str, now: float) -> Block:
        """A block that keeps M(h-1) and records why (with DP: and the releases it saw)."""
        receipts: tuple[UpdateReceipt, ...] = ()
        if self._released and self._ctx.checker.privacy.enabled:
            held = [r for _, r in sorted(self._released.items())]
            bad = {id(r) for r in self._ctx.checker.bad_receipt_signatures(held)}
            receipts = tuple(r for r in held if id(r) not in bad)
        return self._build(
            round_,
            now,
            model_hash=self._parent.ledger.model_hash,
            receipts=receipts,
            rejected=(),
            rule="",
            certificate=None,
            reports=(),
            reason=reason,
        )

    def _build(
        self,
        round_: Round,
        now: float,
        *,
        model_hash: Hash,
        receipts: tuple[UpdateReceipt, ...],
        rejected: tuple[UpdateReceipt, ...],
        rule: str,
        certificate: ImprovementCertificate | None,
        reports: tuple[EvalReport, ...],
        reason: str,
        rejection_reasons: tuple[str, ...] = (),
    ) -> Block:
        me = self._ctx.me
        if me is None:
            raise ConsensusInvariantError("an observer cannot build blocks")
        parent = self._parent
        evidence = self._ctx.evidence.for_block(parent.ledger.punished, MAX_EVIDENCE_IN_BLOCK)
        pool = self._ctx.governance
        proposals, approvals = pool.select(parent.ledger) if pool is not None else ((), ())
        last_commit = self._last_commit()
        header = Header(
            chain_id=self._ctx.chain_id,
            height=self._height,
            round=round_,
            time_ms=max(int(now * 1000), parent.time_ms + 1),
            parent_hash=parent.block_hash,
            proposer=me,
            model_hash=model_hash,
            updates_root=updates_root(receipts, rejected),
            last_commit_hash=commit_hash(last_commit),
            ledger_root=Hash(bytes(HASH_SIZE)),
        )
        block = Block(
            header=header,
            receipts=receipts,
            rejected=rejected,
            rule=rule,
            improvement_certificate=certificate,
            eval_reports=reports,
            carry_over_reason=reason,
            last_commit=last_commit,
            evidence=tuple(e for e in evidence if isinstance(e, DuplicateVoteEvidence)),
            proposal_evidence=tuple(
                e for e in evidence if isinstance(e, DuplicateProposalEvidence)
            ),
            invalid_proposals=tuple(e for e in evidence if isinstance(e, InvalidProposalEvidence))[
                :MAX_INVALID_PROPOSALS_PER_BLOCK
            ],
            proposals=proposals,
            approvals=approvals,
            rejection_reasons=rejection_reasons,
        )
        consequence = self._ctx.genesis.safeguards.evidence_consequence
        root = ledger_root(apply_block(parent.ledger, block, consequence))
        return replace(block, header=replace(header, ledger_root=root))
