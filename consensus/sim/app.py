"""The fake, deterministic learning app of the consensus simulator (no torch in consensus/).

It answers the core's app actions the way the real node + learning/ would, but from hashes:

- `StartTraining(h, base)` -> `TrainingFinished` after a virtual training delay, with an update
  blob hash derived from (member, height, base);
- `BuildCandidate(h, r, base, receipts)` -> the receipts and a model hash sha256(base || sorted
  blob hashes): a pure function of the receipts, like a real aggregation (the node shell
  assembles the candidate from them, as it does for the real app);
- `EvaluateCandidate(c)` -> a verdict and an EvalReport: "not improved" when the model hash does not
  match the recomputed aggregation (a forged candidate) or the candidate rejects a receipt (the
  fake aggregation screens nothing, so no rejection reproduces: a forged one), else "improved" for about 90 % of
  (validator, candidate) pairs, so that some heights exercise the carry-over path when more than
  1/3 of the power disagrees.

Training delays come from the run's seeded RNG, so a seed still fixes the whole trace.
"""

from __future__ import annotations

import hashlib
import random

from consensus.events import BuildCandidate, StartTraining, TrainingFinished
from consensus.rejections import debits
from consensus.types import Candidate, EvalReport, Hash, UpdateReceipt, ValidatorIndex

NOT_IMPROVED_BELOW = 26
"""A verdict byte below this says "not improved": about 10 % of the (validator, candidate) pairs."""


def _sha(*parts: bytes) -> Hash:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return Hash(digest.digest())


def aggregate_model_hash(base_model_hash: bytes, receipts: tuple[UpdateReceipt, ...]) -> Hash:
    """The fake aggregation: a hash of the base model and the sorted update blob hashes."""
    return _sha(b"fake-aggregate", base_model_hash, *sorted(r.blob_hash for r in receipts))


class FakeLearningApp:
    """One member's learning side; `member` is its index in the genesis."""

    def __init__(
        self,
        member: int,
        rng: random.Random,
        rule: str,
        training_delay: tuple[float, float] = (0.2, 1.0),
    ) -> None:
        self.member = member
        self._rng = rng
        self._rule = rule
        self._training_delay = training_delay

    def train(self, action: StartTraining) -> tuple[float, TrainingFinished]:
        """Return (virtual seconds of training, the answer)."""
        delay = self._rng.uniform(*self._training_delay)
        blob = _sha(
            b"fake-update",
            self.member.to_bytes(4, "big"),
            action.height.to_bytes(8, "big"),
            action.base_model_hash,
        )
        return delay, TrainingFinished(
            height=action.height,
            base_model_hash=action.base_model_hash,
            blob_hash=blob,
            n_samples=100 + 10 * self.member,
            train_loss=0.5,
            epsilon_spent=0.1,
        )

    def build(self, action: BuildCandidate) -> tuple[tuple[UpdateReceipt, ...], Hash]:
        """Aggregate the receipts: (the receipts in aggregation order, the model hash)."""
        receipts = tuple(sorted(action.receipts, key=lambda r: (r.author, r.blob_hash)))
        return receipts, aggregate_model_hash(action.base_model_hash, receipts)

    def evaluate(self, candidate: Candidate, candidate_hash: Hash) -> tuple[bool, EvalReport]:
        """Recompute the aggregation and give this member's deterministic verdict."""
        expected = aggregate_model_hash(candidate.base_model_hash, candidate.receipts)
        verdict_byte = _sha(b"fake-verdict", candidate_hash, self.member.to_bytes(4, "big"))[0]
        improved = (
            candidate.model_hash == expected
            and not any(debits(why) for why in candidate.rejection_reasons)
            and verdict_byte >= NOT_IMPROVED_BELOW
        )
        report = EvalReport(
            evaluator=ValidatorIndex(self.member),
            candidate_hash=candidate_hash,
            n_samples=50,
            loss_before=0.5,
            loss_after=0.45 if improved else 0.55,
            metric_before=0.80,
            metric_after=0.82 if improved else 0.78,
            metric_name="auc",
        )
        return improved, report
