"""The learning round of one height: Algorithm 1's getValue() as proof of learning.

Not Tendermint's proof-of-lock: this is how the proposer of a round gets the value it proposes
(line 18 of Algorithm 1, Buchman, Kwon, Milosevic, arXiv:1807.04938v3), and what every member
contributes to it (docs/ARCHITECTURE.md, "Proof of learning"):

 P1. At the start of height h every trainer gets StartTraining(h, M(h-1)); its result is signed
     into an UpdateReceipt and gossiped (`start`, `_on_training_finished`).
 P2. The update window closes when every expected trainer's receipt is in (the trainers of the
     height's set that contributed recently, consensus/governance.py), or at its timeout
     (from the start of the height). The proposer then asks the node to BuildCandidate from the
     receipts, if it holds those of strictly more than 2/3 of the expected trainers; otherwise
     it proposes a carry-over block ("too few updates") (`_advance`).
 P3. The candidate is signed and gossiped; every validator asks its node to EvaluateCandidate
     and signs the verdict it returns (CandidateEvaluated) into an Attestation
     (`_on_candidate_built`, `_on_candidate`, `_on_evaluated`).
 P4. "Improved" attestations of >2/3 of the power: the proposer proposes the model block with an
     ImprovementCertificate. "Not improved" from >1/3 (a certificate is impossible) or the
     attestation timeout: a carry-over block that keeps M(h-1) and records why (`_advance`,
     `_on_timeout`).
 P5. valid(v) (`consensus.validity`) checks the certificate deterministically; votes and commit
     follow Algorithm 1 (consensus/tendermint.py).

`LearningRound` is a sub-machine of `ConsensusCore`: the core routes this height's receipts,
candidates, attestations, the node's answers and the two learning timeouts to `handle`, and
`Tendermint` calls it as its `ValueSource`. When getValue() completes, the value (a block) is
returned to the caller, which proposes it; this machine never touches the round state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from consensus.admission import BAD_SIGNATURE
from consensus.block_builder import BlockBuilder
from consensus.codec import candidate_hash
from consensus.context import Context
from consensus.crypto import batch_verify_same_message
from consensus.errors import INVALID_RECEIPTS, WRONG_BASE, ConsensusInvariantError, refusal
from consensus.events import (
    Action,
    AttestationReceived,
    Broadcast,
    BuildCandidate,
    CandidateBuilt,
    CandidateEvaluated,
    CandidateReceived,
    EvaluateCandidate,
    ReceiptReceived,
    Rejected,
    ScheduleTimeout,
    StartTraining,
    TimeoutFired,
    TrainingFinished,
)
from consensus.governance import expected_trainers
from consensus.learning_state import LearningState, ProposerStage, finite
from consensus.privacy import problem_reason, record_of
from consensus.signing import attestation_bytes
from consensus.types import (
    ROLE_TRAINER,
    Attestation,
    Block,
    Candidate,
    CommitCertificate,
    Hash,
    Height,
    Round,
    Step,
    UpdateReceipt,
)
from consensus.validity import Parent

MAX_CANDIDATES_TRACKED = 256

LearningEvent = (
    TrainingFinished
    | ReceiptReceived
    | CandidateBuilt
    | CandidateReceived
    | CandidateEvaluated
    | AttestationReceived
    | TimeoutFired
)
"""What the core routes to `LearningRound.handle` (timeouts: UPDATE_WINDOW and ATTESTATION)."""


class LearningRound:
    """P1-P4 for one height: receipts, candidates, attestations, and getValue()."""

    def __init__(
        self,
        height: Height,
        parent: Parent,
        last_commit: Callable[[], CommitCertificate | None],
        ctx: Context,
        *,
        started_at: float,
    ) -> None:
        self.height = height
        self.round = Round(0)
        self.state = LearningState()
        self._parent = parent
        self._blocks = BlockBuilder(height, parent, last_commit, ctx, self.state.receipts)
        self._ctx = ctx
        self._started_at = started_at
        self._privacy = ctx.checker.privacy
        # trainers whose DP budget is spent stop contributing: nobody waits for them
        active = self._privacy.active_trainers(ctx.validator_set.trainers, parent.ledger)
        # and the window closes on the recent trainers of this height's set (governance.py)
        recent = expected_trainers(
            ctx.genesis.expected_trainers,
            sum(1 for m in ctx.genesis.validators if ROLE_TRAINER in m.roles),
            ctx.validator_set.members,
            parent.ledger,
            height,
        )
        self._expected = min(ctx.genesis.expected_trainers, active, recent)

    @property
    def model_hash(self) -> Hash:
        """The committed global model M(h-1) this height trains on."""
        return self._parent.ledger.model_hash

    @property
    def stage(self) -> ProposerStage:
        """Where this node, as the round's proposer, stands in getting its value."""
        return self.state.stage

    def start(self, out: list[Action]) -> None:
        """P1: open the update window and, for a trainer, start training on M(h-1)."""
        out.append(
            ScheduleTimeout(
                self.height, Round(0), Step.UPDATE_WINDOW, self._ctx.timeouts.update_window
            )
        )
        me = self._ctx.me
        if self._ctx.is_trainer and me is not None:
            record = record_of(self._parent.ledger, me)
            releases = self._privacy.releases_behind(record.epsilon_spent)
            out.append(
                StartTraining(
                    self.height,
                    self.model_hash,
                    dp_releases=releases or 0,
                    dp_epsilon_spent=record.epsilon_spent,
                    dp_exhausted=self._privacy.exhausted(record),
                )
            )

    # -- the ValueSource of Algorithm 1 (consensus/tendermint.py) ---------------------------

    def enter_round(self, round_: Round) -> None:
        """A new round: an earlier round's getValue() is void."""
        self.round = round_
        self.state.stage = ProposerStage.IDLE

    def propose_allowance(self, now: float) -> float:
        """The rest of the update window, plus the attestation phase."""
        t = self._ctx.timeouts
        remaining_window = max(0.0, self._started_at + t.update_window - now)
        if self.state.window_closed:
            remaining_window = 0.0
        return remaining_window + t.attestation

    def get_value(self, round_: Round, now: float, out: list[Action]) -> Block | None:
        """Begin getValue() as the proposer of `round_` (P2)."""
        self.state.stage = ProposerStage.WAITING_FOR_UPDATES
        self.state.stage_round = round_
        return self._advance(now, Step.PROPOSE, out)

    def proposed(self) -> None:
        self.state.stage = ProposerStage.PROPOSED

    # -- events --------------------------------------------------------------------------------

    def handle(
        self, event: LearningEvent, now: float, step: Step, out: list[Action]
    ) -> Block | None:
        """Feed one event of this height (`step` is the round's); return getValue()'s block
        when it completes, for the caller to propose."""
        if isinstance(event, ReceiptReceived):
            return self._on_receipt(event.receipt, now, step, out)
        if isinstance(event, TrainingFinished):
            return self._on_training_finished(event, now, step, out)
        if isinstance(event, CandidateBuilt):
            return self._on_candidate_built(event.candidate, now, step, out, event.reason)
        if isinstance(event, CandidateReceived):
            self._on_candidate(event.candidate, out)
            return None
        if isinstance(event, CandidateEvaluated):
            return self._on_evaluated(event, now, step, out)
        if isinstance(event, AttestationReceived):
            return self._on_attestation(event.attestation, now, step, out)
        return self._on_timeout(event, now, step, out)

    def _on_timeout(
        self, event: TimeoutFired, now: float, step: Step, out: list[Action]
    ) -> Block | None:
        """P2: the update window closed; P4: the attestation timeout of a round."""
        if event.height != self.height:
            return None
        st = self.state
        if event.step == Step.UPDATE_WINDOW:
            st.window_closed = True
            return self._advance(now, step, out)
        if event.round != self.round or event.step != Step.ATTESTATION:
            return None
        if st.stage == ProposerStage.ATTESTING and st.stage_round == self.round:
            return self._blocks.carry_over(self.round, "attestation timeout", now)
        return None

    def _on_training_finished(
        self, event: TrainingFinished, now: float, step: Step, out: list[Action]
    ) -> Block | None:
        """P1: sign and gossip our own update receipt."""
        me = self._ctx.me
        if (
            event.height != self.height
            or event.base_model_hash != self.model_hash
            or not self._ctx.is_trainer
            or self.state.trained
            or me is None
        ):
            return None
        record = record_of(self._parent.ledger, me)
        epsilon = finite(event.epsilon_spent)
        if self._privacy.enabled:  # the receipt carries this release's increment
            epsilon -= record.epsilon_spent
        unsigned = UpdateReceipt(
            author=me,
            height=self.height,
            base_model_hash=self.model_hash,
            blob_hash=event.blob_hash,
            n_samples=event.n_samples,
            train_loss=finite(event.train_loss),
            epsilon_spent=epsilon,
        )
        if self._privacy.receipt_problem(unsigned, record) is not None:
            return None  # never release past the budget, nor a claim the chain would refuse
        receipt = self._ctx.signatory.sign_receipt(unsigned)
        if receipt is None:
            return None
        self.state.trained = True
        out.append(Broadcast(receipt))
        return self._on_receipt(receipt, now, step, out)

    def _on_receipt(
        self, receipt: UpdateReceipt, now: float, step: Step, out: list[Action]
    ) -> Block | None:
        """P2: collect one receipt per trainer (its signature is checked in a batch when used)."""
        receipts = self.state.receipts
        known = receipts.get(receipt.author)
        if known is not None:
            # first receipt per author wins, unless it was a forgery planted ahead of the real one
            if known == receipt or not self._ctx.checker.bad_receipt_signatures([known]):
                return None
            del receipts[receipt.author]
        if receipt.base_model_hash != self.model_hash:
            out.append(Rejected(WRONG_BASE, "receipt for another base model"))
            return None
        reason = self._ctx.admission.receipt(receipt, verify=False)
        if reason is not None:
            out.append(refusal("receipt", reason))
            return None
        dp_problem = self._privacy.receipt_problem(
            receipt, record_of(self._parent.ledger, receipt.author)
        )
        if dp_problem is not None:
            out.append(Rejected(*dp_problem))
            return None
        receipts[receipt.author] = receipt
        return self._advance(now, step, out)

    # -- getValue() ----------------------------------------------------------------------------

    def _advance(self, now: float, step: Step, out: list[Action]) -> Block | None:
        """P2 and P4 for this node as the current round's proposer, still in step propose."""
        st = self.state
        if st.stage_round != self.round or step != Step.PROPOSE:
            return None
        if st.stage == ProposerStage.WAITING_FOR_UPDATES:
            expected = self._expected
            if expected == 0:
                reason = "no trainers expected"
                if self._ctx.genesis.expected_trainers:
                    reason = "every trainer's privacy budget is spent"
                return self._blocks.carry_over(self.round, reason, now)
            if len(st.receipts) < expected and not st.window_closed:
                return None
            for receipt in self._ctx.checker.bad_receipt_signatures(list(st.receipts.values())):
                out.append(Rejected(BAD_SIGNATURE, "receipt with a bad signature"))
                del st.receipts[receipt.author]
            if len(st.receipts) >= (2 * expected) // 3 + 1:  # strictly more than 2/3
                receipts = tuple(r for _, r in sorted(st.receipts.items()))
                st.stage = ProposerStage.BUILDING
                out.append(BuildCandidate(self.height, self.round, self.model_hash, receipts))
            elif st.window_closed:
                return self._blocks.carry_over(
                    self.round, f"too few updates: {len(st.receipts)} of {expected} expected", now
                )
        elif st.stage == ProposerStage.ATTESTING and st.candidate_hash is not None:
            vset = self._ctx.validator_set
            if self._attested(st.candidate_hash, True, vset.has_quorum, out):
                chash = st.candidate_hash
                attestations = st.tally(chash).verified_with(True)
                return self._blocks.model_block(
                    self.round, chash, st.candidates[chash], attestations, now
                )
            if self._attested(st.candidate_hash, False, vset.has_one_third, out):
                return self._blocks.carry_over(
                    self.round,
                    "not improved: more than 1/3 of the power attested no improvement",
                    now,
                )
        return None

    def _attested(
        self, chash: Hash, improved: bool, enough: Callable[[int], bool], out: list[Action]
    ) -> bool:
        """Whether verified attestations with this verdict pass `enough` (lazy batch check)."""
        tally = self.state.tally(chash)
        power = self._ctx.validator_set.power
        if enough(tally.power(improved, power, verified_only=True)):
            return True
        if not enough(tally.power(improved, power, verified_only=False)):
            return False
        for _ in tally.verify(improved, self._verify_attestations):
            out.append(Rejected(BAD_SIGNATURE, "attestation with a bad signature"))
        return enough(tally.power(improved, power, verified_only=True))

    def _verify_attestations(self, attestations: Sequence[Attestation]) -> list[bool]:
        """One aggregate check: attestations of one verdict share their sign-bytes."""
        message = attestation_bytes(self._ctx.chain_id, attestations[0])
        keys = [self._ctx.validator_set.public_keys[a.signer] for a in attestations]
        signatures = [a.signature for a in attestations]
        return batch_verify_same_message(self._ctx.verifier, keys, message, signatures)

    # -- candidates and attestations -----------------------------------------------------------

    def _on_candidate_built(
        self, candidate: Candidate, now: float, step: Step, out: list[Action], reason: str = ""
    ) -> Block | None:
        """P3 (proposer): sign and gossip the node's candidate, then collect attestations."""
        st = self.state
        me = self._ctx.me
        if (
            st.stage != ProposerStage.BUILDING
            or candidate.height != self.height
            or candidate.base_model_hash != self.model_hash
            or me is None
        ):
            return None
        shares = self._ctx.checker.privacy.noise_shares_problem(len(candidate.receipts))
        if not candidate.receipts or shares:
            why = shares or reason or "every update was rejected"
            return self._blocks.carry_over(self.round, why, now)
        candidate = replace(candidate, round=self.round, proposer=me)
        problem = self._ctx.checker.receipts_problem(
            (*candidate.receipts, *candidate.rejected),
            self.height,
            self.model_hash,
            self._parent.ledger,
        )
        if problem or not candidate.rule:
            raise ConsensusInvariantError(f"the node built an invalid candidate: {problem}")
        signed = self._ctx.signatory.sign_candidate(candidate)
        if signed is None:
            return None
        chash = candidate_hash(signed)
        st.candidates[chash] = signed
        st.candidate_hash = chash
        st.stage = ProposerStage.ATTESTING
        out.append(Broadcast(signed))
        out.append(
            ScheduleTimeout(
                self.height, self.round, Step.ATTESTATION, self._ctx.timeouts.attestation
            )
        )
        self._request_evaluation(chash, signed, out)
        return self._advance(now, step, out)

    def _request_evaluation(self, chash: Hash, candidate: Candidate, out: list[Action]) -> None:
        st = self.state
        if not self._ctx.can_vote:
            return
        if chash in st.mine:
            last = st.rebroadcast_round.get(chash, -1)
            if candidate.round > last:
                st.rebroadcast_round[chash] = candidate.round
                out.append(Broadcast(st.mine[chash]))
            return
        if chash not in st.evaluating and candidate.round not in st.evaluated_rounds:
            # one evaluation per round: a faulty proposer cannot make us evaluate a flood of
            # candidates (evaluation runs a model over the validation split)
            st.evaluating.add(chash)
            st.evaluated_rounds.add(candidate.round)
            out.append(EvaluateCandidate(candidate))

    def _on_candidate(self, candidate: Candidate, out: list[Action]) -> None:
        """P3 (every validator): check a gossiped candidate and ask the node to evaluate it.

        A candidate already known under an earlier round is the same aggregation proposed
        again by a later round's proposer: only its signature and round are new.
        """
        chash = candidate_hash(candidate)
        candidates = self.state.candidates
        known = candidates.get(chash)
        if known is None and len(candidates) >= MAX_CANDIDATES_TRACKED:
            return
        if known is not None and candidate.round <= known.round:
            return
        reason = self._ctx.admission.candidate(
            candidate, current_height=self.height, current_round=self.round, verify=False
        )
        if reason is not None:
            out.append(refusal("candidate", reason))
            return
        if known is None and candidate.base_model_hash != self.model_hash:
            out.append(Rejected(WRONG_BASE, "candidate refused: built on another base model"))
            return
        if not self._ctx.admission.signature_ok(candidate):
            out.append(Rejected(BAD_SIGNATURE, "candidate refused: bad signature"))
            return
        if known is None:
            problem = self._ctx.checker.receipts_problem(
                (*candidate.receipts, *candidate.rejected),
                self.height,
                self.model_hash,
                self._parent.ledger,
            )
            if problem:
                reason = problem_reason(problem, INVALID_RECEIPTS)
                out.append(Rejected(reason, f"candidate refused: {problem}"))
                return
        candidates[chash] = candidate
        self._request_evaluation(chash, candidate, out)

    def _on_evaluated(
        self, event: CandidateEvaluated, now: float, step: Step, out: list[Action]
    ) -> Block | None:
        """P3: sign the node's verdict into an attestation and gossip it."""
        st = self.state
        chash = event.candidate_hash
        me = self._ctx.me
        if chash not in st.candidates or chash in st.mine or not self._ctx.can_vote or me is None:
            return None
        r = event.report
        report = replace(
            r,
            evaluator=me,
            candidate_hash=chash,
            loss_before=finite(r.loss_before),
            loss_after=finite(r.loss_after),
            metric_before=finite(r.metric_before),
            metric_after=finite(r.metric_after),
        )
        attestation = self._ctx.signatory.sign_attestation(
            Attestation(self.height, chash, event.improved, me, report), out
        )
        if attestation is None:
            return None
        st.mine[chash] = attestation
        out.append(Broadcast(attestation))
        st.tally(chash).add(attestation, verified=True)
        return self._advance(now, step, out)

    def _on_attestation(
        self, attestation: Attestation, now: float, step: Step, out: list[Action]
    ) -> Block | None:
        """P4: count a validator's verdict (its signature is checked in a batch when used)."""
        reason = self._ctx.admission.attestation(attestation, verify=False)
        if reason is not None:
            out.append(refusal("attestation", reason))
            return None
        st = self.state
        if (
            attestation.candidate_hash not in st.attestations
            and len(st.attestations) >= MAX_CANDIDATES_TRACKED
        ):
            return None  # bound memory against made-up candidate hashes
        tally = st.tally(attestation.candidate_hash)
        known = tally.by_signer.get(attestation.signer)
        if (
            known is not None
            and known != attestation
            and attestation.signer not in tally.verified
            and not self._verify_attestations([known])[0]
        ):
            del tally.by_signer[attestation.signer]  # a forgery planted ahead of the real one
        added = tally.add(attestation, verified=False)
        if added and st.candidate_hash == attestation.candidate_hash:
            return self._advance(now, step, out)
        return None
