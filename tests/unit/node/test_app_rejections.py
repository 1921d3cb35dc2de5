"""A proposer's rejections must reproduce at every validator (issue 10, attack 3)."""

from __future__ import annotations

from pathlib import Path

import learning
from consensus import codec
from consensus.crypto import BlsSigner
from consensus.genesis import make_genesis
from consensus.types import Hash, Height, UpdateReceipt, ValidatorIndex
from learning import builtin_task, initial_weights
from node.app import LearningApp
from node.config import NodeConfig


def _setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    task = builtin_task("breast-cancer")
    model = initial_weights(task, 0)
    signers = [BlsSigner(bytes([i + 1]) * 32) for i in range(4)]
    genesis = make_genesis(
        "rej", signers, task=task.to_dict(), initial_model_hash=codec.sha256(model)
    )
    app = LearningApp(genesis, NodeConfig(), tmp_path, ValidatorIndex(0))
    updates = []
    for i in range(4):
        blob = app.train(model, 1 + i).update
        assert blob is not None
        receipt = UpdateReceipt(
            ValidatorIndex(i), Height(1), codec.sha256(model), codec.sha256(blob), 100, 0.5, 0.0
        )
        updates.append((receipt, blob))
    return app, model, updates


def _candidate_hash(app: LearningApp, model: bytes, accepted):  # type: ignore[no-untyped-def]
    outcome = app.build_candidate(model, accepted)
    assert outcome.model is not None
    return Hash(codec.sha256(outcome.model))


def test_an_honest_update_listed_as_rejected_makes_the_verdict_not_improved(
    tmp_path: Path,
) -> None:
    """Site 3's honest update is dropped and listed as rejected: the validator's own screening
    accepts it, so it refuses the candidate."""
    app, model, updates = _setup(tmp_path)
    accepted, dropped = updates[:3], [(*updates[3], "outlier")]
    model_hash = _candidate_hash(app, model, accepted)
    result = app.evaluate_candidate(model, Hash(bytes(32)), model_hash, accepted, dropped)
    assert result.refusal == "a rejection does not reproduce"
    assert not result.improved


def test_without_the_recheck_the_forged_rejection_is_attested(tmp_path: Path) -> None:
    """Check skipped (the rejected list not recomputed): the same candidate is recomputed,
    matches, and the verdict has no refusal, so the forged rejection would reach the chain."""
    app, model, updates = _setup(tmp_path)
    accepted = updates[:3]
    model_hash = _candidate_hash(app, model, accepted)
    result = app.evaluate_candidate(model, Hash(bytes(32)), model_hash, accepted, None)
    assert result.refusal == ""


def test_an_update_unavailable_to_the_validator_does_not_reproduce_as_an_outlier(
    tmp_path: Path,
) -> None:
    """The proposer says "outlier" of an update the validator cannot fetch: the claim cannot be
    reproduced, so the verdict refuses it (an honest proposer that could not fetch says
    "unavailable")."""
    app, model, updates = _setup(tmp_path)
    accepted = updates[:3]
    claimed = [(updates[3][0], None, "outlier")]
    model_hash = _candidate_hash(app, model, accepted)
    result = app.evaluate_candidate(model, Hash(bytes(32)), model_hash, accepted, claimed)
    assert result.refusal == "a rejection does not reproduce"


def test_unavailable_is_not_rechecked(tmp_path: Path) -> None:
    """An honest proposer that could not fetch an update the validator can fetch says
    "unavailable": the validator does not re-check it and attests (no liveness trap)."""
    app, model, updates = _setup(tmp_path)
    accepted = updates[:3]
    unavailable = [(*updates[3], "unavailable")]
    model_hash = _candidate_hash(app, model, accepted)
    result = app.evaluate_candidate(model, Hash(bytes(32)), model_hash, accepted, unavailable)
    assert result.refusal == ""


def test_a_reproducible_screening_rejection_is_accepted(tmp_path: Path) -> None:
    """A sign-flipped update the proposer called an outlier is an outlier here too."""
    app, model, updates = _setup(tmp_path)
    accepted = updates[:3]
    receipt, blob = updates[3]
    flipped = learning.attack_update("signflip", model, blob, seed=1)
    outcome = app.build_candidate(model, [*accepted, (receipt, flipped)])
    assert [why for _, why in outcome.rejected] == ["outlier"]
    model_hash = _candidate_hash(app, model, accepted)
    result = app.evaluate_candidate(
        model, Hash(bytes(32)), model_hash, accepted, [(receipt, flipped, "outlier")]
    )
    assert result.refusal == ""


def test_a_rejection_with_another_reason_does_not_reproduce(tmp_path: Path) -> None:
    """The same outlier named "norm-exceeded": the code is part of what must reproduce."""
    app, model, updates = _setup(tmp_path)
    accepted = updates[:3]
    receipt, blob = updates[3]
    flipped = learning.attack_update("signflip", model, blob, seed=1)
    model_hash = _candidate_hash(app, model, accepted)
    result = app.evaluate_candidate(
        model, Hash(bytes(32)), model_hash, accepted, [(receipt, flipped, "norm-exceeded")]
    )
    assert result.refusal == "a rejection does not reproduce"


def test_each_update_is_validated_once_however_often_it_is_judged(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Building a candidate, judging it and re-checking its rejection validate each update's
    bytes once (the verdict is remembered by base and update hash); other bytes under the same
    receipt are validated on their own, and a broken update is still refused."""
    app, model, updates = _setup(tmp_path)
    calls: list[bytes] = []
    real = learning.validate_update

    def counting(task, base, blob, max_norm):  # type: ignore[no-untyped-def]
        calls.append(codec.sha256(bytes(blob)))
        return real(task, base, blob, max_norm)

    monkeypatch.setattr(learning, "validate_update", counting)
    accepted, dropped = updates[:3], [(*updates[3], "outlier")]
    model_hash = _candidate_hash(app, model, accepted)
    app.evaluate_candidate(model, Hash(bytes(32)), model_hash, accepted, dropped)
    app.evaluate_candidate(model, Hash(bytes(32)), model_hash, accepted, dropped)
    assert sorted(calls) == sorted(codec.sha256(b) for _, b in updates)

    receipt, blob = updates[0]
    broken = bytes(blob[:-4]) + b"\x00\x00\xc0\x7f"  # the last weight becomes NaN
    result = app.evaluate_candidate(
        model, Hash(bytes(32)), model_hash, [(receipt, broken), *accepted[1:]], None
    )
    assert result.refusal == "candidate includes an invalid update"
    assert len(calls) == 5
