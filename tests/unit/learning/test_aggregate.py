"""Aggregation: byte-identical under any arrival order, robust rules resist f outliers."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.aggregate import RULES, AggregationError, AggregationRule, aggregate
from learning.serialize import bytes_to_weights, weights_to_bytes

SHAPES = {"net.0.weight": (3, 4), "net.0.bias": (3,)}
GLOBAL = weights_to_bytes({k: np.full(s, 0.5, "f4") for k, s in SHAPES.items()})


def _update(rng: np.random.Generator, loc: float = 0.0, scale: float = 1.0) -> tuple[bytes, bytes]:
    blob = weights_to_bytes(
        {k: rng.normal(loc, scale, s).astype(np.float32) for k, s in SHAPES.items()}
    )
    return hashlib.sha256(blob).digest(), blob


def _inputs(seed: int, n: int) -> list[tuple[bytes, bytes, int]]:
    rng = np.random.default_rng(seed)
    return [(*_update(rng), int(rng.integers(1, 100))) for _ in range(n)]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 9),
    rule=st.sampled_from(RULES),
    clip=st.sampled_from([None, 0.5]),
    order=st.randoms(use_true_random=False),
)
def test_same_bytes_under_any_permutation(
    seed: int, n: int, rule: str, clip: float | None, order: object
) -> None:
    """Any arrival order of the same updates gives byte-identical candidates."""
    updates = _inputs(seed, n)
    shuffled = list(updates)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    rule_obj = AggregationRule(name=rule, clip_norm=clip)
    assert aggregate(rule_obj, GLOBAL, updates) == aggregate(rule_obj, GLOBAL, shuffled)


def test_fedavg_is_the_sample_weighted_mean() -> None:
    """FedAvg weights each delta by its sample count (without the median cap)."""
    a = weights_to_bytes({k: np.full(s, 1.0, "f4") for k, s in SHAPES.items()})
    b = weights_to_bytes({k: np.full(s, 4.0, "f4") for k, s in SHAPES.items()})
    ups = [(hashlib.sha256(a).digest(), a, 2), (hashlib.sha256(b).digest(), b, 1)]
    rule = AggregationRule("fedavg", median_weight_cap=False)
    out = bytes_to_weights(aggregate(rule, GLOBAL, ups))
    assert np.allclose(out["net.0.bias"], 0.5 + 2.0)


def _constant(value: float) -> tuple[bytes, bytes]:
    blob = weights_to_bytes({k: np.full(s, value, "f4") for k, s in SHAPES.items()})
    return hashlib.sha256(blob).digest(), blob


@pytest.mark.parametrize("rule", ["fedavg", "multi-krum"])
def test_an_inflated_sample_count_gets_no_more_than_a_fair_share(rule: str) -> None:
    """Three honest sites (delta 0, 100 samples each) and one claiming 10^9 samples (delta 1):
    with the median cap the liar's weight is 1/4 (its fair share), without it ~1."""
    honest = [(*_constant(0.0), 100) for _ in range(3)]
    liar = (*_constant(1.0), 10**9)
    krum = {"krum_f": 0, "krum_m": 4} if rule == "multi-krum" else {}
    capped = AggregationRule(rule, **krum)  # type: ignore[arg-type]
    uncapped = AggregationRule(rule, median_weight_cap=False, **krum)  # type: ignore[arg-type]
    share = bytes_to_weights(aggregate(capped, GLOBAL, [*honest, liar]))["net.0.bias"][0] - 0.5
    owned = bytes_to_weights(aggregate(uncapped, GLOBAL, [*honest, liar]))["net.0.bias"][0] - 0.5
    assert share == pytest.approx(0.25, abs=1e-6)
    assert owned > 0.99


@pytest.mark.parametrize("rule", ["median", "trimmed-mean", "multi-krum"])
def test_robust_rules_resist_f_outliers(rule: str) -> None:
    """With 2 of 8 updates huge outliers, robust rules stay near the honest mean."""
    rng = np.random.default_rng(0)
    honest = [(*_update(rng, loc=1.0, scale=0.1), 10) for _ in range(6)]
    evil = [(*_update(rng, loc=-500.0, scale=1.0), 1000) for _ in range(2)]
    out = bytes_to_weights(aggregate(rule, GLOBAL, honest + evil))
    for name, value in out.items():
        assert np.all(np.abs(value - 1.5) < 0.3), name
    poisoned = bytes_to_weights(aggregate("fedavg", GLOBAL, honest + evil))
    assert np.all(poisoned["net.0.bias"] < -100)


def test_clipping_bounds_each_update() -> None:
    """With clip_norm the candidate moves at most clip_norm from the global."""
    rng = np.random.default_rng(1)
    ups = [(*_update(rng, loc=50.0), 1) for _ in range(3)]
    out = bytes_to_weights(aggregate(AggregationRule("fedavg", clip_norm=2.0), GLOBAL, ups))
    moved = np.sqrt(sum(float(np.sum((v - 0.5) ** 2)) for v in out.values()))
    assert moved <= 2.0 + 1e-4


def test_errors_are_loud() -> None:
    """No updates, a wrong hash or a wrong shape raise AggregationError."""
    with pytest.raises(AggregationError):
        aggregate("fedavg", GLOBAL, [])
    digest, blob = _update(np.random.default_rng(0))
    with pytest.raises(AggregationError, match="hash"):
        aggregate("fedavg", GLOBAL, [(b"\x00" * 32, blob, 1)])
    wrong = weights_to_bytes({"x": np.zeros(2, "f4")})
    with pytest.raises(AggregationError, match="tensors"):
        aggregate("median", GLOBAL, [(hashlib.sha256(wrong).digest(), wrong, 1)])
    assert digest


def test_rule_round_trips_through_a_map() -> None:
    """AggregationRule survives to_dict/from_dict (for the genesis)."""
    rule = AggregationRule("multi-krum", krum_f=2, clip_norm=3.0)
    assert AggregationRule.from_dict(rule.to_dict()) == rule
