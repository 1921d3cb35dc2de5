"""The invariant checker itself can fail: forks, double signs, bad certificates, liveness."""

from __future__ import annotations

from typing import Any

from consensus.sim.checker import (
    AGREEMENT,
    HONEST_DOUBLE_SIGN,
    IMPROVEMENT_CERTIFICATE,
    LIVENESS,
    InvariantChecker,
)


def _no_problem(block: Any, parent: bytes) -> str | None:
    return None


def test_fork_is_reported_with_step_height_and_validators() -> None:
    """Two different blocks committed at one height break agreement."""
    checker = InvariantChecker(_no_problem, seed=5)
    checker.on_commit(
        10,
        node=0,
        validator=0,
        height=3,
        block_hash=b"a" * 32,
        block=None,
        parent_model_hash=b"",
        signers=[0, 1, 3],
    )
    checker.on_commit(
        11, node=1, validator=1, height=3, block_hash=b"a" * 32, block=None, parent_model_hash=b""
    )
    assert checker.violations == []
    checker.on_commit(
        42,
        node=2,
        validator=2,
        height=3,
        block_hash=b"b" * 32,
        block=None,
        parent_model_hash=b"",
        signers=[0, 2, 3],
    )
    checker.on_commit(
        43, node=3, validator=3, height=3, block_hash=b"b" * 32, block=None, parent_model_hash=b""
    )
    [violation] = checker.safety_violations
    assert violation.invariant == AGREEMENT
    assert (violation.step, violation.height, violation.validators, violation.seed) == (
        42,
        3,
        (0, 3),
        5,
    )
    assert "agreement violated (seed 5, step 42, height 3" in violation.describe()


def test_honest_double_sign_is_reported() -> None:
    """An honest validator signing two values for one slot is caught; a re-send is not."""
    checker = InvariantChecker(_no_problem)
    checker.on_signed(1, validator=4, height=2, slot=("vote", 1, 2, 0), digest=b"x")
    checker.on_signed(2, validator=4, height=2, slot=("vote", 1, 2, 0), digest=b"x")
    checker.on_signed(3, validator=5, height=2, slot=("vote", 1, 2, 0), digest=b"y")
    assert checker.violations == []
    checker.on_signed(9, validator=4, height=2, slot=("vote", 1, 2, 0), digest=b"z")
    [violation] = checker.violations
    assert violation.invariant == HONEST_DOUBLE_SIGN
    assert (violation.step, violation.validators) == (9, (4,))


def test_committed_block_with_bad_certificate_is_reported() -> None:
    """The injected certificate check fails the run."""
    checker = InvariantChecker(lambda block, parent: "forged aggregate")
    checker.on_commit(
        7, node=1, validator=1, height=1, block_hash=b"c" * 32, block=None, parent_model_hash=b""
    )
    [violation] = checker.violations
    assert violation.invariant == IMPROVEMENT_CERTIFICATE
    assert "forged aggregate" in violation.detail


def test_liveness_failure_is_not_a_safety_violation() -> None:
    """Liveness failures are counted apart from safety."""
    checker = InvariantChecker(_no_problem)
    checker.on_liveness_failure(100, 4, [1, 2], "stuck")
    assert checker.safety_violations == []
    assert [v.invariant for v in checker.liveness_failures] == [LIVENESS]
