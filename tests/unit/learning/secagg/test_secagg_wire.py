"""The protocol's messages on the wire (learning/secagg/wire.py): round trips and strict refusals."""

from __future__ import annotations

import cbor2
import numpy as np
import pytest

from learning.secagg import SecAggError, SecAggParams, run_session, transcript_of
from learning.secagg.primitives import session_id
from learning.secagg.protocol import Participant, Reveal
from learning.secagg.wire import (
    decode_advert,
    decode_reveal,
    decode_sealed,
    decode_transcript,
    encode_advert,
    encode_reveal,
    encode_sealed,
    encode_transcript,
)

SESSION = session_id("wire", 1, bytes(32))


def _session() -> tuple[dict[int, Participant], list[Reveal]]:
    parts = {i: Participant(i, SecAggParams(), SESSION) for i in range(4)}
    adverts = {i: p.advertise() for i, p in parts.items()}
    sealed = [m for p in parts.values() for m in p.share_keys(adverts)]
    for p in parts.values():
        p.receive_shares(sealed)
    reveals = [p.reveal(range(4), [0, 1, 2]) for i, p in parts.items() if i != 3]
    return parts, reveals


def test_messages_round_trip() -> None:
    """Advert, sealed shares, reveal and transcript decode to what was encoded."""
    parts, reveals = _session()
    advert = parts[2].advertise()
    assert decode_advert(encode_advert(advert)) == advert
    adverts = {i: p.advertise() for i, p in parts.items()}
    fresh = Participant(0, SecAggParams(), SESSION)
    sealed = fresh.share_keys(adverts | {0: fresh.advertise()})
    assert decode_sealed(encode_sealed(0, sealed)) == sealed
    assert decode_reveal(encode_reveal(reveals[0])) == reveals[0]
    vectors = {i: np.zeros(10) for i in range(4)}
    transcript = transcript_of(run_session(SecAggParams(), SESSION, vectors))
    assert decode_transcript(encode_transcript(transcript)) == transcript


def test_a_reveal_with_both_shares_for_one_participant_is_refused() -> None:
    """The wire refuses what an honest participant never sends: b_u and s_u^SK shares of one u."""
    _parts, reveals = _session()
    r = reveals[0]
    share = next(iter(r.seed_shares.values()))
    both = Reveal(r.sender, r.seed_shares, {next(iter(r.seed_shares)): share})
    with pytest.raises(SecAggError, match="both shares") as info:
        decode_reveal(encode_reveal(both))
    assert info.value.reason == "secagg-malformed"


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\x00",
        cbor2.dumps([1, 0, b"x" * 32, b"y" * 31]),
        cbor2.dumps([2, 0, b"x" * 32, b"y" * 32]),
        cbor2.dumps([1, 5000, b"x" * 32, b"y" * 32]),
        cbor2.dumps([1, -1, b"x" * 32, b"y" * 32]),
        bytes(200),
    ],
)
def test_malformed_adverts_are_refused_with_a_reason(data: bytes) -> None:
    """Garbage, a short key, another version, an index out of range, an oversized message."""
    with pytest.raises(SecAggError) as info:
        decode_advert(data)
    assert info.value.reason == "secagg-malformed"


def test_a_transcript_naming_one_participant_twice_is_refused() -> None:
    """Duplicate indices in a list are malformed, not merged."""
    key = b"k" * 32
    data = cbor2.dumps([1, [[0, key, key], [0, key, key]], [0], [], []], canonical=True)
    with pytest.raises(SecAggError, match="malformed secure aggregation transcript"):
        decode_transcript(data)
