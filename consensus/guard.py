"""Signer guard: never sign two conflicting messages (docs/ARCHITECTURE.md "Safety on disk").

Pure logic. The node persists `SignerState` (the `PersistSignerState` action) before the
signature leaves the process, and hands it back to the core after a restart, so a validator that
crashed after prevoting block A never prevotes block B in the same round.

Ordering: (height, round, step) with step PROPOSE < PREVOTE < PRECOMMIT. Signing at a position
strictly after the last one is allowed; signing again at the same position is allowed only for
the same value (gossip re-sends are idempotent, BLS signatures are deterministic); anything
earlier is refused. Attestations are tracked per height: one verdict per candidate.

The state also carries the lock of Algorithm 1 (lockedRound and id(lockedValue)): a validator
that restarts in the middle of a height must not forget that it is locked, or it could prevote
a value conflicting with a precommit it already sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


class SignRefused(Exception):
    """Signing would conflict with something this validator signed before."""


@dataclass(frozen=True, slots=True)
class SignerState:
    """The last signed consensus position and value, plus this height's attestation verdicts."""

    height: int = 0
    round: int = -1
    step: int = -1
    value: bytes = b""  # block hash signed at that position; b"" for nil
    attest_height: int = 0
    attested: tuple[tuple[bytes, bool], ...] = ()
    locked_height: int = 0
    locked_round: int = -1
    locked_value: bytes = b""


def check_sign(
    state: SignerState, height: int, round_: int, step: int, value: bytes
) -> SignerState:
    """Return the state after signing `value` at (height, round, step), or raise SignRefused."""
    position = (height, round_, step)
    last = (state.height, state.round, state.step)
    if position < last:
        raise SignRefused(f"already signed at {last}, refusing {position}")
    if position == last:
        if value != state.value:
            raise SignRefused(f"conflicting value at {position}")
        return state
    return replace(state, height=height, round=round_, step=step, value=value)


def check_attest(
    state: SignerState, height: int, candidate_hash: bytes, improved: bool
) -> SignerState:
    """Return the state after attesting `improved` for a candidate, or raise SignRefused."""
    if height < state.attest_height:
        raise SignRefused(f"attestation for past height {height}")
    attested = state.attested if height == state.attest_height else ()
    for known_hash, known_verdict in attested:
        if known_hash == candidate_hash:
            if known_verdict != improved:
                raise SignRefused("conflicting verdict for one candidate")
            return state
    return replace(
        state,
        attest_height=height,
        attested=(*attested, (candidate_hash, improved)),
    )


def with_lock(state: SignerState, height: int, round_: int, value: bytes) -> SignerState:
    """The state after locking on `value` in (height, round)."""
    return replace(state, locked_height=height, locked_round=round_, locked_value=value)
