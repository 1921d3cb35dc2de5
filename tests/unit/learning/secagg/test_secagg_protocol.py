"""Secure aggregation (learning/secagg): exact sums, hidden inputs, dropouts and the threshold."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from learning.secagg import SecAggError, SecAggParams, run_session
from learning.secagg.graph import neighbours
from learning.secagg.primitives import load_private, mask_vector, session_id
from learning.secagg.protocol import (
    Participant,
    SealedShares,
    decode_masked,
    encode_masked,
    pair_seed,
)
from learning.secagg.quantize import dequantise_sum, quantise
from learning.secagg.shamir import combine
from learning.secagg.unmask import masked_sum

PARAMS = SecAggParams()
SESSION = session_id("test-chain", 7, bytes(32))
DIM = 20_000


def _vectors(n: int, seed: int = 0, dim: int = DIM) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.normal(0.0, 0.5, dim) for i in range(n)}


def _expected(vectors: dict[int, np.ndarray], ids: object) -> np.ndarray:
    total = np.zeros(next(iter(vectors.values())).size, dtype=np.uint32)
    for i in ids:  # type: ignore[attr-defined]
        total += quantise(vectors[i], PARAMS)
    return total


def _corr(masked: bytes, update: np.ndarray) -> float:
    values = decode_masked(masked, update.size).astype(np.float64)
    return float(np.corrcoef(values, update)[0, 1])


def test_quantisation_error_is_within_one_step_per_summand() -> None:
    """The dequantised sum of 5 clipped vectors is within 5 quantisation steps of the float sum."""
    vectors = _vectors(5)
    total = _expected(vectors, range(5))
    step = 2 * PARAMS.clip_range / (PARAMS.quant_range - 1)
    err = np.abs(dequantise_sum(total, 5, PARAMS) - sum(vectors.values()))
    assert err.max() <= 5 * step / 2 + 1e-12


def test_the_sum_is_exact_with_all_pairs() -> None:
    """The unmasked sum equals the sum of the quantised updates, bit for bit."""
    vectors = _vectors(6)
    result = run_session(PARAMS, SESSION, vectors)
    assert np.array_equal(result.total, _expected(vectors, range(6)))


def test_the_sum_is_exact_with_secagg_plus_neighbourhoods() -> None:
    """With 4 neighbours out of 15 the sum is still exact."""
    params = replace(PARAMS, neighbours=4)
    vectors = _vectors(16, dim=2000)
    result = run_session(params, SESSION, vectors)
    assert np.array_equal(result.total, _expected(vectors, range(16)))


def test_one_masked_update_does_not_correlate_with_its_update() -> None:
    """An observer's view of one masked update is noise; the unmasked quantisation is not."""
    vectors = _vectors(4)
    result = run_session(PARAMS, SESSION, vectors)
    for i, update in vectors.items():
        assert abs(_corr(result.masked[i], update)) < 0.05
        assert _corr(encode_masked(quantise(update, PARAMS)), update) > 0.99


def test_a_trainer_silent_after_masking_is_recovered_from_shares() -> None:
    """Its self mask comes back from t shares, and its update stays in the sum."""
    vectors = _vectors(5)
    result = run_session(PARAMS, SESSION, vectors, silent_after_masking=[3])
    assert result.included == frozenset(range(5))
    assert np.array_equal(result.total, _expected(vectors, range(5)))


def test_a_trainer_silent_before_masking_is_excluded_and_its_pair_masks_removed() -> None:
    """Its pair masks are recomputed from its recovered key; the sum holds the others exactly."""
    vectors = _vectors(5)
    result = run_session(PARAMS, SESSION, vectors, silent_before_masking=[2])
    assert result.included == frozenset({0, 1, 3, 4})
    assert set(result.record.dropped_keys) == {2}
    assert np.array_equal(result.total, _expected(vectors, [0, 1, 3, 4]))


def test_a_trainer_silent_before_sharing_is_left_out_of_the_pairs() -> None:
    """Nobody pairs with a participant whose shares never went out."""
    vectors = _vectors(5, dim=500)
    result = run_session(PARAMS, SESSION, vectors, silent_before_sharing=[0])
    assert result.shared == frozenset({1, 2, 3, 4})
    assert np.array_equal(result.total, _expected(vectors, [1, 2, 3, 4]))


def test_fewer_than_t_survivors_cannot_unmask() -> None:
    """Two revealers of five, threshold three: a clear secagg-threshold error."""
    with pytest.raises(SecAggError, match="threshold is 3") as info:
        run_session(PARAMS, SESSION, _vectors(5, dim=100), silent_after_masking=[0, 1, 2])
    assert info.value.reason == "secagg-threshold"


def test_a_survivor_refuses_to_reveal_when_too_few_are_included() -> None:
    """An aggregator claiming that nearly everyone dropped gets no key shares."""
    parts = {i: Participant(i, PARAMS, SESSION) for i in range(5)}
    adverts = {i: p.advertise() for i, p in parts.items()}
    sealed = [m for p in parts.values() for m in p.share_keys(adverts)]
    for p in parts.values():
        p.receive_shares(sealed)
    with pytest.raises(SecAggError, match="threshold") as info:
        parts[0].reveal(range(5), included=[0, 1])
    assert info.value.reason == "secagg-threshold"


def test_a_participant_reveals_for_one_included_set_only() -> None:
    """Revealing b_u once and s_u^SK later would unmask u: the second reveal is refused."""
    vectors = _vectors(5, dim=1000)
    parts = {i: Participant(i, PARAMS, SESSION) for i in range(5)}
    adverts = {i: p.advertise() for i, p in parts.items()}
    sealed = [m for p in parts.values() for m in p.share_keys(adverts)]
    for p in parts.values():
        p.receive_shares(sealed)
    shared = frozenset(range(5))
    masked = {i: p.masked_input(vectors[i], shared) for i, p in parts.items()}
    first = [parts[i].reveal(shared, range(5)) for i in (0, 1, 2)]
    with pytest.raises(SecAggError, match="already revealed"):
        parts[0].reveal(shared, [0, 1, 2, 3])
    # Without the rule: the seed shares of the first reveal plus the key shares a second one
    # (claiming that 4 dropped) would have given unmask 4's own update.
    seed = combine([r.seed_shares[4] for r in first], 3)
    key = load_private(combine([parts[i]._held[4][1] for i in (0, 1, 2)], 3))
    y = decode_masked(masked[4], 1000) - mask_vector(seed, 1000)
    for v in range(4):
        y += mask_vector(pair_seed(key, adverts[v].mask_pk, SESSION, v, 4), 1000)
    assert np.array_equal(y, quantise(vectors[4], PARAMS))


def test_the_sum_recomputes_from_the_public_record_only() -> None:
    """Masked inputs, public keys and the recovered secrets give the same sum again."""
    vectors = _vectors(5, dim=1000)
    result = run_session(PARAMS, SESSION, vectors, silent_before_masking=[1])
    again = masked_sum(
        PARAMS, SESSION, result.adverts, result.shared, result.masked, result.record, 1000
    )
    assert np.array_equal(again, result.total)
    wrong = replace(result.record, dropped_keys={1: bytes(range(32))})
    with pytest.raises(SecAggError, match="does not match its advertised key"):
        masked_sum(PARAMS, SESSION, result.adverts, result.shared, result.masked, wrong, 1000)


def test_tampered_sealed_shares_are_refused() -> None:
    """A share ciphertext altered in transit does not open."""
    parts = {i: Participant(i, PARAMS, SESSION) for i in range(3)}
    adverts = {i: p.advertise() for i, p in parts.items()}
    sealed = parts[0].share_keys(adverts)
    to_one = next(m for m in sealed if m.receiver == 1)
    parts[1].share_keys(adverts)
    bad = SealedShares(0, 1, bytes([to_one.ciphertext[0] ^ 1]) + to_one.ciphertext[1:])
    with pytest.raises(SecAggError, match="does not open"):
        parts[1].receive_shares([bad])


def test_a_masked_update_of_the_wrong_size_is_refused() -> None:
    """Decoding checks the magic and the model's length."""
    blob = encode_masked(np.zeros(10, dtype=np.uint32))
    assert decode_masked(blob, 10).size == 10
    with pytest.raises(SecAggError, match="the model needs 44"):
        decode_masked(blob, 11)
    with pytest.raises(SecAggError, match="magic"):
        decode_masked(b"X" + blob[1:], 10)


def test_the_neighbour_graph_is_regular_symmetric_and_public() -> None:
    """Degree k, v in N(u) iff u in N(v), the same for one session and another for the next."""
    graph = neighbours(range(16), 4, SESSION)
    assert all(len(vs) == 4 and u not in vs for u, vs in graph.items())
    assert all(u in graph[v] for u, vs in graph.items() for v in vs)
    assert graph == neighbours(range(16), 4, SESSION)
    assert graph != neighbours(range(16), 4, session_id("test-chain", 8, bytes(32)))
    assert all(len(vs) == 15 for vs in neighbours(range(16), 0, SESSION).values())
