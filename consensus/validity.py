"""`valid(block)`: the deterministic block check of Algorithm 1, and certificate checks.

Every honest node must give the same answer for the same block and parent, so the check only
uses the block, the parent (hash, header, ledger) and the genesis: structure, hashes, proposer,
parent link, the parent's commit certificate, the improvement certificate (>2/3 of the power
signed "improved" for exactly this aggregation of exactly these receipts), update receipts,
evidence and the ledger root (docs/ARCHITECTURE.md "Proof of learning", step 5).

Signature checks are cached by content hash: a receipt or certificate checked once (when the
candidate arrived, say) is not checked again when the block arrives.

The member set is a function of height (consensus/governance.py): a block is checked against
the set of its own height (`next_members` of the parent's ledger) and its parent's commit
certificate against the set that committed the parent (the parent ledger's `members`), so one
checker replays a whole chain across set changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.codec import (
    candidate_id,
    commit_hash,
    hash_of,
    ledger_root,
    receipt_hash,
    updates_root,
)
from consensus.crypto import Verifier
from consensus.governance import block_governance_problem, next_members
from consensus.invalid_proposal import MAX_INVALID_PROPOSALS_PER_BLOCK
from consensus.invalid_proposal import evidence_problem as invalid_proposal_problem
from consensus.ledger import apply_block
from consensus.privacy import Accountant, PrivacyRules
from consensus.rejections import reasons_problem
from consensus.signing import (
    attestation_sign_bytes,
    proposal_head_bytes,
    receipt_bytes,
    report_bytes,
    vote_bytes,
    vote_sign_bytes,
)
from consensus.types import (
    HASH_SIZE,
    Block,
    CommitCertificate,
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
    EvalReport,
    Genesis,
    Hash,
    Ledger,
    Proposal,
    ProposalHead,
    UpdateReceipt,
    ValidatorInfo,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet

MAX_REASON_LENGTH = 200
MAX_CACHED_SETS = 8
MAX_EVIDENCE_PER_BLOCK = 32


@dataclass(frozen=True, slots=True)
class Parent:
    """What a block is checked against: the committed parent (or the genesis for height 1)."""

    height: int
    block_hash: Hash
    time_ms: int
    ledger: Ledger


class BlockChecker:
    """Deterministic validity checks with signature caches."""

    def __init__(
        self,
        genesis: Genesis,
        validator_set: ValidatorSet,
        verifier: Verifier,
        accountant: Accountant | None = None,
    ) -> None:
        self.genesis = genesis
        self.privacy = PrivacyRules(genesis.privacy, accountant)
        self.validator_set = validator_set
        self.verifier = verifier
        self._good_receipts: set[Hash] = set()
        self._good_certificates: set[Hash] = set()
        self._sets: dict[tuple[ValidatorInfo, ...], ValidatorSet] = {
            validator_set.members: validator_set
        }

    def adopt_sets(self, other: BlockChecker) -> None:
        """Keep `other`'s validator sets (a new height's checker). Signature caches are not
        shared: a signature good under one set's keys proves nothing under a rotated key."""
        for members, vset in other._sets.items():
            if len(self._sets) < MAX_CACHED_SETS:
                self._sets.setdefault(members, vset)

    def set_for(self, members: tuple[ValidatorInfo, ...]) -> ValidatorSet:
        """The validator set of `members` (cached: a chain has few distinct sets)."""
        found = self._sets.get(members)
        if found is None:
            if len(self._sets) >= MAX_CACHED_SETS:
                self._sets.pop(next(iter(self._sets)))
            found = self._sets[members] = ValidatorSet(members)
        return found

    # -- receipts ----------------------------------------------------------------------------

    def receipts_problem(
        self,
        receipts: Sequence[UpdateReceipt],
        height: int,
        base_model_hash: bytes,
        ledger: Ledger | None = None,
    ) -> str | None:
        """Why these receipts cannot be aggregated at `height` on `base_model_hash`, or None.

        With the parent `ledger`, the genesis privacy rules too (consensus/privacy.py); such a
        problem starts with its reason code ("dp-budget: ...")."""
        authors: set[int] = set()
        unchecked: list[UpdateReceipt] = []
        for receipt in receipts:
            if receipt.height != height:
                return f"receipt of member {receipt.author} is for height {receipt.height}"
            if receipt.base_model_hash != base_model_hash:
                return f"receipt of member {receipt.author} trained another base model"
            if not self.validator_set.is_trainer(receipt.author):
                return f"member {receipt.author} is not a trainer"
            if receipt.author in authors:
                return f"two receipts of member {receipt.author}"
            if receipt.n_samples <= 0 or receipt.epsilon_spent < 0:
                return f"receipt of member {receipt.author} has impossible statistics"
            if receipt.n_samples > self.genesis.safeguards.max_samples_per_update:
                return f"receipt of member {receipt.author} claims more samples than the cap"
            authors.add(receipt.author)
            if receipt_hash(receipt) not in self._good_receipts:
                unchecked.append(receipt)
        if ledger is not None:
            dp_problem = self.privacy.receipts_problem(receipts, ledger)
            if dp_problem is not None:
                return f"{dp_problem[0]}: {dp_problem[1]}"
        bad = self.bad_receipt_signatures(unchecked)
        if bad:
            return f"bad receipt signature of member {bad[0].author}"
        return None

    def bad_receipt_signatures(self, receipts: Sequence[UpdateReceipt]) -> list[UpdateReceipt]:
        """Check receipt signatures in one aggregate verification; return the bad ones."""
        if not receipts:
            return []
        chain = self.genesis.chain_id
        keys = [self.validator_set.public_keys[r.author] for r in receipts]
        messages = [receipt_bytes(chain, r) for r in receipts]
        ok = False
        if len(receipts) > 1:
            try:
                aggregate = self.verifier.aggregate([r.signature for r in receipts])
                ok = self.verifier.verify_distinct_messages(keys, messages, aggregate)
            except ValueError:
                ok = False
        bad: list[UpdateReceipt] = []
        for receipt, key, message in zip(receipts, keys, messages, strict=True):
            if ok or self.verifier.verify(key, message, receipt.signature):
                self._good_receipts.add(receipt_hash(receipt))
            else:
                bad.append(receipt)
        return bad

    def bad_report_signatures(self, reports: Sequence[EvalReport]) -> list[EvalReport]:
        """Check eval report signatures in one aggregate verification; return the bad ones."""
        members = len(self.validator_set)
        reports = list(reports)
        inside = [r for r in reports if 0 <= r.evaluator < members]
        bad = [r for r in reports if not 0 <= r.evaluator < members]
        if not inside:
            return bad
        chain = self.genesis.chain_id
        keys = [self.validator_set.public_keys[r.evaluator] for r in inside]
        messages = [report_bytes(chain, r) for r in inside]
        ok = False
        if len(inside) > 1:
            try:
                aggregate = self.verifier.aggregate([r.signature for r in inside])
                ok = self.verifier.verify_distinct_messages(keys, messages, aggregate)
            except ValueError:
                ok = False
        if not ok:
            bad += [
                r
                for r, key, message in zip(inside, keys, messages, strict=True)
                if not self.verifier.verify(key, message, r.signature)
            ]
        return bad

    def reports_problem(self, reports: Sequence[EvalReport]) -> str | None:
        """Why the eval reports of a block are not their evaluators' own numbers, or None
        (docs/THREAT-MODEL.md "Unsigned numbers")."""
        bad = self.bad_report_signatures(reports)
        if bad:
            return f"eval report signature of member {bad[0].evaluator} does not verify"
        return None

    # -- certificates ------------------------------------------------------------------------

    def commit_certificate_problem(
        self, cert: CommitCertificate, validator_set: ValidatorSet | None = None
    ) -> str | None:
        """Why `cert` does not prove >2/3 precommits of `validator_set` (default: this
        checker's set) for its block, or None."""
        vs = validator_set or self.validator_set
        key = hash_of(cert)
        if key in self._good_certificates:
            return None
        signers = vs.indices(cert.signers)
        if signers is None:
            return "malformed commit certificate bitfield"
        if not vs.has_quorum(vs.power_of(signers)):
            return "commit certificate without a quorum of power"
        message = vote_sign_bytes(
            self.genesis.chain_id, VoteType.PRECOMMIT, cert.height, cert.round, cert.block_hash
        )
        keys = [vs.public_keys[i] for i in signers]
        if not self.verifier.verify_same_message(keys, message, cert.aggregate_signature):
            return "commit certificate signature does not verify"
        self._good_certificates.add(key)
        return None

    def improvement_certificate_problem(self, block: Block, base_model_hash: bytes) -> str | None:
        """Why the block's improvement certificate does not certify its candidate built on
        `base_model_hash` (the parent's model), or None."""
        cert = block.improvement_certificate
        if cert is None:
            return "no improvement certificate"
        expected = candidate_id(
            block.header.height,
            base_model_hash,
            block.header.model_hash,
            block.rule,
            block.receipts,
            block.rejected,
            block.rejection_reasons,
        )
        if cert.candidate_hash != expected:
            return "improvement certificate is for another candidate"
        key = hash_of(cert)
        signers = self.validator_set.indices(cert.signers)
        if signers is None:
            return "malformed improvement certificate bitfield"
        if key in self._good_certificates:
            return None
        if not self.validator_set.has_quorum(self.validator_set.power_of(signers)):
            return "improvement certificate without a quorum of power"
        message = attestation_sign_bytes(
            self.genesis.chain_id, block.header.height, cert.candidate_hash, True
        )
        keys = [self.validator_set.public_keys[i] for i in signers]
        if not self.verifier.verify_same_message(keys, message, cert.aggregate_signature):
            return "improvement certificate signature does not verify"
        self._good_certificates.add(key)
        return None

    def evidence_problem(self, evidence: DuplicateVoteEvidence, max_height: int) -> str | None:
        """Why `evidence` does not prove an equivocation, or None."""
        a, b = evidence.vote_a, evidence.vote_b
        if (a.vote_type, a.height, a.round, a.validator) != (
            b.vote_type,
            b.height,
            b.round,
            b.validator,
        ):
            return "evidence votes are for different positions"
        if evidence_order(a.block_hash) >= evidence_order(b.block_hash):
            return "evidence votes do not conflict or are out of order"
        if not self.validator_set.is_validator(a.validator):
            return "evidence against a non-validator"
        if not 1 <= a.height <= max_height or a.round < 0:
            return "evidence for an impossible height"
        key = self.validator_set.public_keys[a.validator]
        chain = self.genesis.chain_id
        for vote in (a, b):
            if not self.verifier.verify(key, vote_bytes(chain, vote), vote.signature):
                return "evidence vote signature does not verify"
        return None

    def proposal_evidence_problem(
        self, evidence: DuplicateProposalEvidence, max_height: int
    ) -> str | None:
        """Why `evidence` does not prove a double proposal, or None."""
        a, b = evidence.first, evidence.second
        if a.order >= b.order:
            return "evidence proposals do not conflict or are out of order"
        if not self.validator_set.is_validator(evidence.proposer):
            return "evidence against a non-validator"
        if not 1 <= evidence.height <= max_height or evidence.round < 0:
            return "evidence for an impossible height"
        if min(a.valid_round, b.valid_round) < -1 or max(a.valid_round, b.valid_round) >= (
            evidence.round
        ):
            return "evidence proposal with an impossible valid round"
        key = self.validator_set.public_keys[evidence.proposer]
        chain = self.genesis.chain_id
        for head in (a, b):
            message = proposal_head_bytes(
                chain, evidence.height, evidence.round, head.block_hash, head.valid_round
            )
            if not self.verifier.verify(key, message, head.signature):
                return "evidence proposal signature does not verify"
        return None

    def rule_problem(self, rule: str) -> str | None:
        """Why a block or candidate may not declare `rule`: only the genesis rule is the
        chain's (docs/THREAT-MODEL.md "Rule swap")."""
        if rule != self.genesis.aggregation_rule:
            return f"declares aggregation rule {rule[:40]!r}, the genesis rule is {self.genesis.aggregation_rule!r}"
        return None

    # -- blocks ------------------------------------------------------------------------------

    def block_problem(self, block: Block, parent: Parent) -> str | None:
        """Why `block` is not a valid child of `parent`, or None: Algorithm 1's valid(v),
        checked against the member set of the block's height."""
        own = self.validator_set
        self.validator_set = self.set_for(next_members(parent.ledger) or own.members)
        try:
            return self._block_problem(block, parent)
        finally:
            self.validator_set = own

    def _block_problem(self, block: Block, parent: Parent) -> str | None:  # noqa: C901
        header = block.header
        vs = self.validator_set
        if header.chain_id != self.genesis.chain_id:
            return "wrong chain id"
        if header.height != parent.height + 1:
            return f"height {header.height} does not follow {parent.height}"
        if header.parent_hash != parent.block_hash:
            return "wrong parent hash"
        if header.round < 0 or header.proposer != vs.proposer_for(header.height, header.round):
            return "block built by a member who was not the round's proposer"
        if header.time_ms <= parent.time_ms:
            return "block time not after its parent's"
        if parent.height == 0:
            if block.last_commit is not None:
                return "block 1 carries a last commit"
        else:
            if block.last_commit is None:
                return "missing the parent's commit certificate"
            lc = block.last_commit
            if lc.height != parent.height or lc.block_hash != parent.block_hash:
                return "last commit certifies another block"
            problem = self.commit_certificate_problem(
                lc, self.set_for(parent.ledger.members or vs.members)
            )
            if problem:
                return problem
        if header.last_commit_hash != commit_hash(block.last_commit):
            return "wrong last commit hash"
        if header.updates_root != updates_root(block.receipts, block.rejected):
            return "wrong updates root"
        if block.improvement_certificate is None:
            if not 0 < len(block.carry_over_reason) <= MAX_REASON_LENGTH:
                return "carry-over block without a reason (or an overlong one)"
            if block.rejected or block.rejection_reasons or block.rule or block.eval_reports:
                return "carry-over block with updates"
            if block.receipts:  # with DP on: releases accounted without a model
                if not self.privacy.enabled:
                    return "carry-over block with updates"
                problem = self.receipts_problem(
                    block.receipts, header.height, parent.ledger.model_hash, parent.ledger
                )
                if problem:
                    return problem
            if header.model_hash != parent.ledger.model_hash:
                return "carry-over block changes the model"
        else:
            if block.carry_over_reason:
                return "model block with a carry-over reason"
            if not block.receipts or not block.rule:
                return "model block without updates or rule"
            problem = reasons_problem(
                block.rejected, block.rejection_reasons
            ) or self.privacy.noise_shares_problem(len(block.receipts))
            if problem:
                return problem
            problem = self.rule_problem(block.rule)
            if problem:
                return problem
            if len(header.model_hash) != HASH_SIZE:
                return "malformed model hash"
            problem = self.receipts_problem(
                (*block.receipts, *block.rejected),
                header.height,
                parent.ledger.model_hash,
                parent.ledger,
            )
            if problem:
                return problem
            problem = self.improvement_certificate_problem(block, parent.ledger.model_hash)
            if problem:
                return problem
            signers = set(vs.indices(block.improvement_certificate.signers) or ())
            evaluators: set[int] = set()
            for report in block.eval_reports:
                if report.evaluator not in signers or report.evaluator in evaluators:
                    return "eval report of a member outside the certificate"
                if report.candidate_hash != block.improvement_certificate.candidate_hash:
                    return "eval report for another candidate"
                evaluators.add(report.evaluator)
            problem = self.reports_problem(block.eval_reports)
            if problem:
                return problem
        if len(block.all_evidence) > MAX_EVIDENCE_PER_BLOCK or (
            len(block.invalid_proposals) > MAX_INVALID_PROPOSALS_PER_BLOCK
        ):
            return "too much evidence in one block"
        punished = set(parent.ledger.punished)
        for evidence in block.all_evidence:
            if evidence.offence in punished:
                return "evidence already punished"
            if isinstance(evidence, DuplicateVoteEvidence):
                problem = self.evidence_problem(evidence, header.height)
            elif isinstance(evidence, DuplicateProposalEvidence):
                problem = self.proposal_evidence_problem(evidence, header.height)
            else:
                problem = invalid_proposal_problem(
                    evidence, self.genesis, self.validator_set, self.verifier, header.height
                )
            if problem:
                return problem
            punished.add(evidence.offence)
        problem = block_governance_problem(
            self.genesis.chain_id, parent.ledger, block, self.verifier
        )
        if problem:
            return problem
        consequence = self.genesis.safeguards.evidence_consequence
        if header.ledger_root != ledger_root(apply_block(parent.ledger, block, consequence)):
            return "wrong ledger root"
        return None


def evidence_order(vote_hash: Hash | None) -> tuple[int, bytes]:
    """Sort key of a vote value in evidence: nil first, then block hashes in byte order."""
    return (0, b"") if vote_hash is None else (1, bytes(vote_hash))


def make_evidence(first: Vote, second: Vote) -> DuplicateVoteEvidence:
    """Evidence from two conflicting votes, in the canonical order valid() expects."""
    if evidence_order(first.block_hash) > evidence_order(second.block_hash):
        first, second = second, first
    return DuplicateVoteEvidence(vote_a=first, vote_b=second)


def proposal_evidence(
    first: Proposal, first_hash: Hash, second: Proposal, second_hash: Hash
) -> DuplicateProposalEvidence | None:
    """The evidence that two proposals of one member for one (height, round) conflict (their
    blocks or valid rounds differ), or None; signatures are the caller's to check."""
    position = (first.height, first.round, first.proposer)
    if position != (second.height, second.round, second.proposer):
        return None
    heads = sorted(
        (
            ProposalHead(first_hash, first.valid_round, first.signature),
            ProposalHead(second_hash, second.valid_round, second.signature),
        ),
        key=lambda h: h.order,
    )
    if heads[0].order == heads[1].order:
        return None
    return DuplicateProposalEvidence(first.height, first.round, first.proposer, *heads)
