"""The signer guard refuses conflicting signatures."""

from __future__ import annotations

import pytest

from consensus.guard import SignerState, SignRefused, check_attest, check_sign

PROPOSE, PREVOTE, PRECOMMIT = 0, 1, 2
A, B = b"a" * 32, b"b" * 32


def test_moving_forward_is_allowed() -> None:
    """Later positions sign freely and are recorded."""
    s = check_sign(SignerState(), 1, 0, PREVOTE, A)
    s = check_sign(s, 1, 0, PRECOMMIT, b"")
    s = check_sign(s, 1, 1, PREVOTE, B)
    assert (s.height, s.round, s.step, s.value) == (1, 1, PREVOTE, B)


def test_same_position_same_value_is_idempotent() -> None:
    """Re-signing the identical vote (a gossip re-send) is allowed and changes nothing."""
    s = check_sign(SignerState(), 1, 0, PREVOTE, A)
    assert check_sign(s, 1, 0, PREVOTE, A) is s


def test_conflicting_value_is_refused() -> None:
    """Two different prevotes for one (height, round) are refused."""
    s = check_sign(SignerState(), 1, 0, PREVOTE, A)
    with pytest.raises(SignRefused, match="conflicting"):
        check_sign(s, 1, 0, PREVOTE, B)
    with pytest.raises(SignRefused):
        check_sign(s, 1, 0, PREVOTE, b"")


def test_going_back_is_refused() -> None:
    """After a precommit, no prevote of that round, nor anything of earlier heights."""
    s = check_sign(SignerState(), 2, 3, PRECOMMIT, A)
    with pytest.raises(SignRefused):
        check_sign(s, 2, 3, PREVOTE, A)
    with pytest.raises(SignRefused):
        check_sign(s, 1, 9, PRECOMMIT, A)


def test_one_verdict_per_candidate() -> None:
    """An attestation verdict cannot flip for the same candidate; other candidates are fine."""
    s = check_attest(SignerState(), 1, A, True)
    assert check_attest(s, 1, A, True) is s
    with pytest.raises(SignRefused):
        check_attest(s, 1, A, False)
    s = check_attest(s, 1, B, False)
    s = check_attest(s, 2, A, False)  # a new height starts afresh
    assert s.attested == ((A, False),)
    with pytest.raises(SignRefused):
        check_attest(s, 1, B, True)
