"""The daemon's secure aggregation (learning/secagg/chained.py): what an observer sees of one
height, what the transcript recomputes, dropouts, and the one-reveal rule."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from learning.secagg.chained import (
    Pairing,
    RevealBody,
    check_reveal,
    decode_masked,
    decode_transcript,
    encode_transcript,
    mask_update,
    masked_total,
    open_share,
    pair_seed,
    reveal_for,
    transcript_from,
)
from learning.secagg.params import SecAggError, SecAggParams
from learning.secagg.primitives import mask_vector, new_private_key, public_bytes, session_id
from learning.secagg.quantize import quantise

N, SIZE = 5, 4000
KEYS = {i: new_private_key() for i in range(N)}


def _pairing(height: int = 3, neighbours: int = 0) -> Pairing:
    return Pairing(
        session_id("chain", height, bytes(32)),
        {i: public_bytes(k) for i, k in KEYS.items()},
        SecAggParams(neighbours=neighbours),
    )


def _updates(seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.normal(scale=0.05, size=SIZE) for i in range(N)}


def _publish(pairing: Pairing, xs: dict[int, np.ndarray]) -> dict[int, bytes]:
    return {u: mask_update(pairing, u, KEYS[u], x) for u, x in xs.items()}


def _u3(blobs: dict[int, bytes]) -> dict[int, bytes]:
    return {u: hashlib.sha256(b).digest() for u, b in blobs.items()}


def _exact(pairing: Pairing, xs: dict[int, np.ndarray], who: list[int]) -> np.ndarray:
    total = np.zeros(SIZE, dtype=np.uint32)
    for u in who:
        total += quantise(xs[u], pairing.params)
    return total


def test_an_observer_learns_nothing_from_the_masked_blobs_yet_the_sum_is_exact() -> None:
    """Every masked blob of a height and the transcript are public; each blob is uncorrelated
    with its update (as is the blob minus the revealed self mask), and the sum is exact."""
    pairing, xs = _pairing(), _updates()
    blobs = _publish(pairing, xs)
    masked = {u: decode_masked(b, SIZE) for u, b in blobs.items()}
    for u in xs:
        corr = np.corrcoef(masked[u].values.astype(np.float64), xs[u])[0, 1]
        assert abs(corr) < 0.06
    bodies = [reveal_for(pairing, v, KEYS[v], _u3(blobs), masked) for v in xs]
    transcript = decode_transcript(encode_transcript(transcript_from(pairing, _u3(blobs), bodies)))
    for u in xs:  # the transcript's b_u removes the self mask; the pair masks still hide x_u
        left = masked[u].values - mask_vector(transcript.self_seeds[u], SIZE)
        assert abs(np.corrcoef(left.astype(np.float64), xs[u])[0, 1]) < 0.06
    total = masked_total(pairing, transcript, masked, SIZE)
    assert np.array_equal(total, _exact(pairing, xs, list(xs)))


def test_without_masks_the_same_observer_reads_every_update() -> None:
    """The attack the masks defeat: a quantised update in the clear correlates perfectly."""
    pairing, xs = _pairing(), _updates()
    clear = quantise(xs[0], pairing.params).astype(np.float64)
    assert np.corrcoef(clear, xs[0])[0, 1] > 0.999


def test_a_trainer_silent_after_publishing_is_recovered_from_its_holders() -> None:
    """Member 4 publishes and goes silent: t of its holders' shares give b_4, sum is exact."""
    pairing, xs = _pairing(), _updates(1)
    blobs = _publish(pairing, xs)
    masked = {u: decode_masked(b, SIZE) for u, b in blobs.items()}
    bodies = [reveal_for(pairing, v, KEYS[v], _u3(blobs), masked) for v in range(N - 1)]
    transcript = transcript_from(pairing, _u3(blobs), bodies)
    assert np.array_equal(
        masked_total(pairing, transcript, masked, SIZE), _exact(pairing, xs, list(xs))
    )


def test_a_trainer_that_never_published_is_excluded_through_its_pair_seeds() -> None:
    """Member 4 trains but never publishes: survivors reveal their seeds with it, once."""
    pairing, xs = _pairing(neighbours=2), _updates(2)
    blobs = _publish(pairing, {u: x for u, x in xs.items() if u != 4})
    masked = {u: decode_masked(b, SIZE) for u, b in blobs.items()}
    bodies = [reveal_for(pairing, v, KEYS[v], _u3(blobs), masked) for v in blobs]
    assert all(4 not in b.seed_shares for b in bodies)
    transcript = transcript_from(pairing, _u3(blobs), bodies)
    assert {d for d, _ in transcript.pair_seeds} == {4}
    total = masked_total(pairing, transcript, masked, SIZE)
    assert np.array_equal(total, _exact(pairing, xs, [0, 1, 2, 3]))


def test_too_few_shares_is_a_threshold_failure() -> None:
    """Three of five trainers silent after publishing: two shares of each b_u, t = 3."""
    pairing, xs = _pairing(), _updates(3)
    blobs = _publish(pairing, xs)
    masked = {u: decode_masked(b, SIZE) for u, b in blobs.items()}
    bodies = [reveal_for(pairing, v, KEYS[v], _u3(blobs), masked) for v in (0, 1)]
    with pytest.raises(SecAggError) as caught:
        transcript_from(pairing, _u3(blobs), bodies)
    assert caught.value.reason == "secagg-threshold"


def test_a_trainer_refuses_to_reveal_when_too_few_of_its_holders_are_included() -> None:
    """With U3 = {0, 1} of 5 a reveal could expose a neighbour: refused with secagg-threshold."""
    pairing, xs = _pairing(), _updates(4)
    blobs = _publish(pairing, {u: xs[u] for u in (0, 1)})
    masked = {u: decode_masked(b, SIZE) for u, b in blobs.items()}
    with pytest.raises(SecAggError) as caught:
        reveal_for(pairing, 0, KEYS[0], _u3(blobs), masked)
    assert caught.value.reason == "secagg-threshold"


def test_revealing_both_secrets_of_one_member_would_expose_it() -> None:
    """Why the one-reveal rule: b_u (included) plus u's pair seeds (dropped, from a second U3)
    give u's update exactly; so a trainer answers one U3 a height and check_reveal refuses a
    reveal holding a share and a seed for one member."""
    pairing, xs = _pairing(), _updates(5)
    blobs = _publish(pairing, xs)
    masked = {u: decode_masked(b, SIZE) for u, b in blobs.items()}
    with_0 = transcript_from(
        pairing,
        _u3(blobs),
        [reveal_for(pairing, v, KEYS[v], _u3(blobs), masked) for v in xs],
    )
    without_0 = {u: h for u, h in _u3(blobs).items() if u != 0}
    seeds = {v: reveal_for(pairing, v, KEYS[v], without_0, masked).pair_seeds[0] for v in without_0}
    y = masked[0].values - mask_vector(with_0.self_seeds[0], SIZE)
    for v, seed in seeds.items():
        y = y - mask_vector(seed, SIZE) if v > 0 else y + mask_vector(seed, SIZE)
    assert np.array_equal(y, quantise(xs[0], pairing.params))  # the attack, had both come out
    both = RevealBody(1, {0: open_share(pairing, 1, KEYS[1], masked[0])}, {0: seeds[1]})
    with pytest.raises(SecAggError, match="a share and a seed"):
        check_reveal(pairing, _u3(blobs), both)


def test_a_pair_seed_is_bound_to_its_height() -> None:
    """Revealing s_uv at one height tells nothing of another: the seeds differ by session."""
    a, b = _pairing(3), _pairing(4)
    assert pair_seed(KEYS[0], 0, 1, a.keys[1], a.session) != pair_seed(
        KEYS[0], 0, 1, b.keys[1], b.session
    )
    assert pair_seed(KEYS[0], 0, 1, a.keys[1], a.session) == pair_seed(
        KEYS[1], 1, 0, a.keys[0], a.session
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:20],
        lambda b: b"XXXXXXXX" + b[8:],
        lambda b: b[:-1],
        lambda b: b[:12] + b"\xff" + b[13:],
    ],
)
def test_a_malformed_masked_blob_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    """Truncated, wrong magic, a partial coordinate, a broken header: one clear error."""
    pairing = _pairing()
    blob = mask_update(pairing, 0, KEYS[0], np.zeros(10))
    with pytest.raises(SecAggError):
        decode_masked(mutate(blob), 10)


def test_a_transcript_is_decoded_strictly() -> None:
    """Garbage, a non-canonical copy or an oversized transcript is refused (secagg-malformed)."""
    for data in (b"\xff", b"\x9f\xff", bytes(10_000_000)):
        with pytest.raises(SecAggError) as caught:
            decode_transcript(data)
        assert caught.value.reason == "secagg-malformed"
