"""What an observer of a height gets: every masked blob and the public transcript.

It cannot recover any trainer's update (correlation ~0, even after removing the revealed self
masks), while recomputing the aggregate from the same public data gives the aggregator's bytes.
"""

from __future__ import annotations

import numpy as np
import pytest

from learning.secagg import (
    SecAggError,
    SecAggParams,
    decode_transcript,
    encode_transcript,
    recompute_mean,
    secure_mean,
    transcript_of,
)
from learning.secagg.primitives import mask_vector, session_id
from learning.secagg.protocol import decode_masked
from learning.secagg.session import flatten, run_session
from learning.serialize import bytes_to_weights, weights_to_bytes

PARAMS = SecAggParams(neighbours=2)
SESSION = session_id("observer-chain", 3, bytes(range(32)))
SHAPES = {"linear.weight": (1, 30000), "linear.bias": (1,)}  # |r| of noise ~ 0.006


def _blob(rng: np.random.Generator, scale: float) -> bytes:
    return weights_to_bytes(
        {k: rng.normal(0.0, scale, s).astype(np.float32) for k, s in SHAPES.items()}
    )


def test_an_observer_learns_the_sum_and_no_single_update() -> None:
    """All masked blobs plus the transcript: the exact candidate, no update's coordinates."""
    rng = np.random.default_rng(1)
    model = _blob(rng, 1.0)
    updates = [_blob(rng, 0.1) for _ in range(5)]
    candidate, result = secure_mean(PARAMS, SESSION, model, updates)

    seen = decode_transcript(encode_transcript(transcript_of(result)))  # as stored and fetched
    assert recompute_mean(PARAMS, SESSION, seen, dict(result.masked), model) == candidate
    plain = flatten(model) + np.mean([flatten(u) for u in updates], axis=0)
    assert np.abs(flatten(candidate) - plain).max() < 1e-5

    total = np.zeros(flatten(model).size, dtype=np.uint32)
    for i, update in enumerate(updates):
        truth = flatten(update)
        masked = decode_masked(result.masked[i], truth.size)
        unself = masked - mask_vector(seen.record.self_seeds[i], truth.size)
        for view in (masked, unself):
            assert abs(np.corrcoef(view.astype(np.float64), truth)[0, 1]) < 0.05
        total += unself
    # the same views summed are the aggregate: the masks cancel only there
    truths = np.sum([flatten(u) for u in updates], axis=0)
    assert np.corrcoef(total.astype(np.float64), truths)[0, 1] > 0.99


def test_a_height_with_a_dropout_still_recomputes_exactly() -> None:
    """One trainer silent after masking, one before: the observer recomputes the same sum."""
    rng = np.random.default_rng(2)
    vectors = {i: flatten(_blob(rng, 0.1)) for i in range(6)}
    params = SecAggParams()
    result = run_session(
        params, SESSION, vectors, silent_after_masking=[1], silent_before_masking=[4]
    )
    seen = decode_transcript(encode_transcript(transcript_of(result)))
    model = weights_to_bytes({k: np.zeros(s, np.float32) for k, s in SHAPES.items()})
    again = recompute_mean(params, SESSION, seen, result.masked, model)
    mean = np.mean([vectors[i] for i in sorted(result.masked)], axis=0)
    assert sorted(result.masked) == [0, 1, 2, 3, 5]
    assert np.abs(flatten(again) - mean).max() < 1e-5
    assert set(bytes_to_weights(again)) == set(SHAPES)


def test_a_transcript_with_a_forged_dropped_key_is_refused() -> None:
    """The recovered key of a dropout must match the key it advertised."""
    rng = np.random.default_rng(3)
    vectors = {i: flatten(_blob(rng, 0.1)) for i in range(4)}
    result = run_session(SecAggParams(), SESSION, vectors, silent_before_masking=[2])
    forged = transcript_of(result)
    forged.record.dropped_keys[2] = bytes(32)  # type: ignore[index]
    model = weights_to_bytes({k: np.zeros(s, np.float32) for k, s in SHAPES.items()})
    with pytest.raises(SecAggError, match="advertised key"):
        recompute_mean(SecAggParams(), SESSION, forged, result.masked, model)
