"""The proof-of-learning half of the consensus core (DESIGN.md "Proof of learning", P1-P4 in
consensus/core.py's rule list): receipts, candidates, attestations and getValue().

A mixin of `ConsensusCore`, split out only to keep each module readable; it shares the core's
state and is never used alone.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from consensus.codec import candidate_hash, commit_hash, ledger_root, updates_root
from consensus.crypto import Signer, Verifier, batch_verify_same_message
from consensus.events import (
    Action,
    AttestationReceived,
    Broadcast,
    BuildCandidate,
    CandidateEvaluated,
    CandidateReceived,
    EvaluateCandidate,
    Event,
    ReceiptReceived,
    ScheduleTimeout,
    TrainingFinished,
)
from consensus.guard import SignerState, SignRefused, check_attest
from consensus.ledger import apply_block
from consensus.pol import LearningState, ProposerStage
from consensus.signing import attestation_bytes, candidate_bytes, receipt_bytes
from consensus.types import (
    HASH_SIZE,
    Attestation,
    Block,
    Candidate,
    CommitCertificate,
    DuplicateVoteEvidence,
    EvalReport,
    Genesis,
    Hash,
    Header,
    Height,
    ImprovementCertificate,
    Ledger,
    Round,
    Step,
    UpdateReceipt,
    ValidatorIndex,
)
from consensus.validators import ValidatorSet
from consensus.validity import BlockChecker, Parent

MAX_ROUND_AHEAD = 1000  # messages for rounds further ahead are dropped (memory bound)
MAX_EVIDENCE_IN_BLOCK = 8
MAX_CANDIDATES_TRACKED = 256


def finite(x: float) -> float:
    """Clamp a statistic into what the codec accepts: a diverged model's NaN or infinite loss
    becomes the largest float (with its sign), so the message still decodes at every peer."""
    x = float(x)
    if math.isnan(x):
        return sys.float_info.max
    return max(-sys.float_info.max, min(sys.float_info.max, x))


class ConsensusInvariantError(Exception):
    """Our own bug: the core reached a state the algorithm rules out. Stop loudly."""


class LearningPhase:
    """Proof-of-learning event handlers and block building, mixed into ConsensusCore."""

    # State owned by ConsensusCore (declared for the type checker).
    genesis: Genesis
    validator_set: ValidatorSet
    verifier: Verifier
    checker: BlockChecker
    me: ValidatorIndex | None
    _signer: Signer | None
    _chain: str
    _can_vote: bool
    _is_trainer: bool
    _pol: LearningState
    _evidence: dict[tuple[int, int, int, int], DuplicateVoteEvidence]
    height: Height
    round: Round
    step: Step
    ledger: Ledger
    last_commit: CommitCertificate | None
    signer_state: SignerState

    @property
    def model_hash(self) -> Hash:
        """The committed global model M(h-1)."""
        return self.ledger.model_hash

    if TYPE_CHECKING:  # provided by ConsensusCore

        def _buffer_event(self, event: Event) -> None: ...
        def _reject(self, reason: str) -> None: ...
        def _propose(self, block: Block, valid_round: Round, out: list[Action]) -> None: ...
        def _progress(self, now: float, out: list[Action]) -> None: ...
        def _parent(self) -> Parent: ...
        def _guarded(self, new_state: SignerState, out: list[Action]) -> None: ...

    def _on_training_finished(self, event: TrainingFinished, now: float, out: list[Action]) -> None:
        """P1: sign and gossip our own update receipt."""
        if (
            event.height != self.height
            or event.base_model_hash != self.model_hash
            or not self._is_trainer
            or self._pol.trained
            or self.me is None
            or self._signer is None
        ):
            return
        receipt = UpdateReceipt(
            author=self.me,
            height=self.height,
            base_model_hash=self.model_hash,
            blob_hash=event.blob_hash,
            n_samples=event.n_samples,
            train_loss=finite(event.train_loss),
            epsilon_spent=finite(event.epsilon_spent),
        )
        receipt = replace(receipt, signature=self._signer.sign(receipt_bytes(self._chain, receipt)))
        self._pol.trained = True
        out.append(Broadcast(receipt))
        self._on_receipt(receipt, now, out)

    def _on_receipt(self, receipt: UpdateReceipt, now: float, out: list[Action]) -> None:
        if receipt.height > self.height:
            self._buffer_event(ReceiptReceived(receipt))
            return
        if receipt.height < self.height:
            return
        known = self._pol.receipts.get(receipt.author)
        if known is not None:
            # first receipt per author wins, unless it was a forgery planted ahead of the real one
            if known == receipt or not self.checker.bad_receipt_signatures([known]):
                return
            del self._pol.receipts[receipt.author]
        problem = None
        if receipt.base_model_hash != self.model_hash:
            problem = "receipt for another base model"
        elif not self.validator_set.is_trainer(receipt.author):
            problem = "receipt from a member who is not a trainer"
        elif receipt.n_samples <= 0 or receipt.epsilon_spent < 0:
            problem = "receipt with impossible statistics"
        if problem:
            self._reject(problem)
            return
        self._pol.receipts[receipt.author] = receipt  # signature checked in a batch when used
        self._advance_learning(now, out)

    def _trainer_quorum(self) -> int:
        """Receipts needed at the window timeout: strictly more than 2/3 of expected trainers."""
        return (2 * self.genesis.expected_trainers) // 3 + 1

    def _advance_learning(self, now: float, out: list[Action]) -> None:
        """P2 and P4 for this node as the current round's proposer."""
        pol = self._pol
        if pol.stage_round != self.round or self.step != Step.PROPOSE:
            return
        if pol.stage == ProposerStage.WAITING_FOR_UPDATES:
            expected = self.genesis.expected_trainers
            if expected == 0:
                self._propose_carry_over("no trainers expected", now, out)
                return
            if len(pol.receipts) < expected and not pol.window_closed:
                return
            bad = self.checker.bad_receipt_signatures(list(pol.receipts.values()))
            for receipt in bad:
                self._reject("receipt with a bad signature")
                del pol.receipts[receipt.author]
            if len(pol.receipts) >= self._trainer_quorum():
                receipts = tuple(r for _, r in sorted(pol.receipts.items()))
                pol.stage = ProposerStage.BUILDING
                out.append(BuildCandidate(self.height, self.round, self.model_hash, receipts))
            elif pol.window_closed:
                self._propose_carry_over(
                    f"too few updates: {len(pol.receipts)} of {expected} expected", now, out
                )
        elif pol.stage == ProposerStage.ATTESTING and pol.candidate_hash is not None:
            tally = pol.tally(pol.candidate_hash)
            vset = self.validator_set
            if self._attested_power(pol.candidate_hash, True, vset.has_quorum):
                candidate = pol.candidates[pol.candidate_hash]
                attestations = tally.verified_with(True)
                certificate = ImprovementCertificate(
                    candidate_hash=pol.candidate_hash,
                    signers=vset.bitfield(a.signer for a in attestations),
                    aggregate_signature=self.verifier.aggregate(
                        [a.signature for a in attestations]
                    ),
                )
                block = self._build_block(
                    now,
                    model_hash=candidate.model_hash,
                    receipts=candidate.receipts,
                    rejected=candidate.rejected,
                    rule=candidate.rule,
                    certificate=certificate,
                    reports=tuple(a.report for a in attestations),
                    reason="",
                )
                self._propose(block, Round(-1), out)
                self._progress(now, out)
            elif self._attested_power(pol.candidate_hash, False, vset.has_one_third):
                self._propose_carry_over(
                    "not improved: more than 1/3 of the power attested no improvement", now, out
                )

    def _attested_power(self, chash: Hash, improved: bool, enough: Callable[[int], bool]) -> bool:
        """Whether verified attestations with this verdict pass `enough` (lazy batch check)."""
        tally = self._pol.tally(chash)
        power = self.validator_set.power
        if enough(tally.power(improved, power, verified_only=True)):
            return True
        if not enough(tally.power(improved, power, verified_only=False)):
            return False
        for _ in tally.verify(improved, self._verify_attestations):
            self._reject("attestation with a bad signature")
        return enough(tally.power(improved, power, verified_only=True))

    def _verify_attestations(self, attestations: Sequence[Attestation]) -> list[bool]:
        message = attestation_bytes(self._chain, attestations[0])
        keys = [self.validator_set.public_keys[a.signer] for a in attestations]
        return batch_verify_same_message(
            self.verifier, keys, message, [a.signature for a in attestations]
        )

    def _propose_carry_over(self, reason: str, now: float, out: list[Action]) -> None:
        block = self._build_block(
            now,
            model_hash=self.model_hash,
            receipts=(),
            rejected=(),
            rule="",
            certificate=None,
            reports=(),
            reason=reason,
        )
        self._propose(block, Round(-1), out)
        self._progress(now, out)

    def _build_block(
        self,
        now: float,
        *,
        model_hash: Hash,
        receipts: tuple[UpdateReceipt, ...],
        rejected: tuple[UpdateReceipt, ...],
        rule: str,
        certificate: ImprovementCertificate | None,
        reports: tuple[EvalReport, ...],
        reason: str,
    ) -> Block:
        """getValue(): a block on top of the committed parent, with its ledger root."""
        if self.me is None:
            raise ConsensusInvariantError("an observer cannot build blocks")
        parent = self._parent()
        punished = set(self.ledger.punished)
        evidence = tuple(e for k, e in sorted(self._evidence.items()) if k not in punished)[
            :MAX_EVIDENCE_IN_BLOCK
        ]
        header = Header(
            chain_id=self._chain,
            height=self.height,
            round=self.round,
            time_ms=max(int(now * 1000), parent.time_ms + 1),
            parent_hash=parent.block_hash,
            proposer=self.me,
            model_hash=model_hash,
            updates_root=updates_root(receipts, rejected),
            last_commit_hash=commit_hash(self.last_commit),
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
            last_commit=self.last_commit,
            evidence=evidence,
        )
        root = ledger_root(apply_block(self.ledger, block))
        return replace(block, header=replace(header, ledger_root=root))

    def _on_candidate_built(self, candidate: Candidate, now: float, out: list[Action]) -> None:
        """P3 (proposer): sign and gossip the node's candidate, then collect attestations."""
        pol = self._pol
        if (
            pol.stage != ProposerStage.BUILDING
            or candidate.height != self.height
            or candidate.base_model_hash != self.model_hash
            or self.me is None
            or self._signer is None
        ):
            return
        if not candidate.receipts:
            self._propose_carry_over("every update was rejected", now, out)
            return
        candidate = replace(candidate, round=self.round, proposer=self.me)
        problem = self.checker.receipts_problem(
            (*candidate.receipts, *candidate.rejected), self.height, self.model_hash
        )
        if problem or not candidate.rule:
            raise ConsensusInvariantError(f"the node built an invalid candidate: {problem}")
        candidate = replace(
            candidate, signature=self._signer.sign(candidate_bytes(self._chain, candidate))
        )
        chash = candidate_hash(candidate)
        pol.candidates[chash] = candidate
        pol.candidate_hash = chash
        pol.stage = ProposerStage.ATTESTING
        out.append(Broadcast(candidate))
        out.append(
            ScheduleTimeout(
                self.height, self.round, Step.ATTESTATION, self.genesis.timeouts.attestation
            )
        )
        self._request_evaluation(chash, candidate, out)
        self._advance_learning(now, out)

    def _request_evaluation(self, chash: Hash, candidate: Candidate, out: list[Action]) -> None:
        pol = self._pol
        if not self._can_vote:
            return
        if chash in pol.mine:
            last = pol.rebroadcast_round.get(chash, -1)
            if candidate.round > last:
                pol.rebroadcast_round[chash] = candidate.round
                out.append(Broadcast(pol.mine[chash]))
            return
        if chash not in pol.evaluating and candidate.round not in pol.evaluated_rounds:
            # one evaluation per round: a faulty proposer cannot make us evaluate a flood of
            # candidates (evaluation runs a model over the validation split)
            pol.evaluating.add(chash)
            pol.evaluated_rounds.add(candidate.round)
            out.append(EvaluateCandidate(candidate))

    def _on_candidate(self, candidate: Candidate, now: float, out: list[Action]) -> None:
        """P3 (every validator): check a gossiped candidate and ask the node to evaluate it."""
        if candidate.height > self.height:
            self._buffer_event(CandidateReceived(candidate))
            return
        if candidate.height < self.height:
            return
        chash = candidate_hash(candidate)
        known = self._pol.candidates.get(chash)
        if known is None and len(self._pol.candidates) >= MAX_CANDIDATES_TRACKED:
            return
        if known is None:
            problem = self._candidate_problem(candidate)
            if problem:
                self._reject(f"candidate refused: {problem}")
                return
            self._pol.candidates[chash] = candidate
        elif candidate.round > known.round:
            key = self.validator_set.public_keys[candidate.proposer]
            if candidate.proposer != self.validator_set.proposer_for(self.height, candidate.round):
                return
            if not self.verifier.verify(
                key, candidate_bytes(self._chain, candidate), candidate.signature
            ):
                return
            self._pol.candidates[chash] = candidate
        else:
            return
        self._request_evaluation(chash, candidate, out)

    def _candidate_problem(self, candidate: Candidate) -> str | None:
        if not 0 <= candidate.round <= self.round + MAX_ROUND_AHEAD:
            return "impossible round"
        if candidate.proposer != self.validator_set.proposer_for(self.height, candidate.round):
            return "not from the round's proposer"
        if candidate.base_model_hash != self.model_hash:
            return "built on another base model"
        if not candidate.receipts or not candidate.rule:
            return "no updates or no rule"
        key = self.validator_set.public_keys[candidate.proposer]
        if not self.verifier.verify(
            key, candidate_bytes(self._chain, candidate), candidate.signature
        ):
            return "bad signature"
        return self.checker.receipts_problem(
            (*candidate.receipts, *candidate.rejected), self.height, self.model_hash
        )

    def _on_evaluated(self, event: CandidateEvaluated, now: float, out: list[Action]) -> None:
        """P3: sign the node's verdict into an attestation and gossip it."""
        pol = self._pol
        chash = event.candidate_hash
        if (
            chash not in pol.candidates
            or chash in pol.mine
            or not self._can_vote
            or self.me is None
            or self._signer is None
        ):
            return
        try:
            state = check_attest(self.signer_state, self.height, chash, event.improved)
        except SignRefused:
            return
        r = event.report
        report = replace(
            r,
            evaluator=self.me,
            candidate_hash=chash,
            loss_before=finite(r.loss_before),
            loss_after=finite(r.loss_after),
            metric_before=finite(r.metric_before),
            metric_after=finite(r.metric_after),
        )
        attestation = Attestation(self.height, chash, event.improved, self.me, report)
        attestation = replace(
            attestation, signature=self._signer.sign(attestation_bytes(self._chain, attestation))
        )
        self._guarded(state, out)
        pol.mine[chash] = attestation
        out.append(Broadcast(attestation))
        pol.tally(chash).add(attestation, verified=True)
        self._advance_learning(now, out)

    def _on_attestation(self, attestation: Attestation, now: float, out: list[Action]) -> None:
        if attestation.height > self.height:
            self._buffer_event(AttestationReceived(attestation))
            return
        if attestation.height < self.height:
            return
        if not self.validator_set.is_validator(attestation.signer):
            self._reject("attestation from a non-validator")
            return
        report = attestation.report
        if (
            report.evaluator != attestation.signer
            or report.candidate_hash != attestation.candidate_hash
        ):
            self._reject("attestation whose report is someone else's")
            return
        pol = self._pol
        if (
            attestation.candidate_hash not in pol.attestations
            and len(pol.attestations) >= MAX_CANDIDATES_TRACKED
        ):
            return  # bound memory against made-up candidate hashes
        tally = pol.tally(attestation.candidate_hash)
        known = tally.by_signer.get(attestation.signer)
        if (
            known is not None
            and known != attestation
            and attestation.signer not in tally.verified
            and not self._verify_attestations([known])[0]
        ):
            del tally.by_signer[attestation.signer]  # a forgery planted ahead of the real one
        added = tally.add(attestation, verified=False)
        if added and pol.candidate_hash == attestation.candidate_hash:
            self._advance_learning(now, out)
