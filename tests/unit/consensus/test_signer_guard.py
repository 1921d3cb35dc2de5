"""The signer guard refuses conflicting signatures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.guard import SignerState, SignRefused, check_attest, check_sign, with_lock

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


# -- the guard's states only move forward (what node.driver.coalesce_signer_writes relies on) --

_SIGN = st.tuples(
    st.just("sign"),
    st.integers(1, 3),
    st.integers(0, 2),
    st.sampled_from([PROPOSE, PREVOTE, PRECOMMIT]),
    st.sampled_from([A, B, b""]),
)
_ATTEST = st.tuples(st.just("attest"), st.integers(1, 3), st.sampled_from([A, B]), st.booleans())
_LOCK = st.tuples(st.just("lock"), st.integers(1, 3), st.integers(0, 2), st.sampled_from([A, B]))


def _apply(state: SignerState, op: tuple) -> SignerState:  # type: ignore[type-arg]
    """The state after `op`, as the core would derive it (a refused op changes nothing)."""
    try:
        if op[0] == "sign":
            return check_sign(state, *op[1:])
        if op[0] == "attest":
            return check_attest(state, *op[1:])
    except SignRefused:
        return state
    return (
        with_lock(state, *op[1:]) if op[1:] >= (state.locked_height, state.locked_round) else state
    )


def _refused(state: SignerState, probe: tuple) -> bool:  # type: ignore[type-arg]
    try:
        if probe[0] == "sign":
            check_sign(state, *probe[1:])
        else:
            check_attest(state, *probe[1:])
    except SignRefused:
        return True
    return False


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_SIGN, _ATTEST, _LOCK), min_size=1, max_size=12),
    st.lists(st.one_of(_SIGN, _ATTEST), min_size=1, max_size=12),
)
def test_a_later_state_refuses_everything_an_earlier_one_refuses(
    ops: list[tuple],
    probes: list[tuple],  # type: ignore[type-arg]
) -> None:
    """So persisting only a step's last state, before the step's first message leaves,
    protects every message of the step: what an earlier state would refuse after a restart,
    the last one refuses too."""
    states = [SignerState()]
    for op in ops:
        states.append(_apply(states[-1], op))
    last = states[-1]
    for earlier in states:
        for probe in probes:
            if _refused(earlier, probe):
                assert _refused(last, probe), (earlier, last, probe)
