"""Attacks rewrite honest deltas as documented."""

from __future__ import annotations

import numpy as np
import pytest

from learning.attacks import attack_update, parse_attack
from learning.screening import screen_outliers
from learning.serialize import bytes_to_weights, weights_to_bytes

GLOBAL = weights_to_bytes({"w": np.zeros(4, "f4")})
HONEST = weights_to_bytes({"w": np.array([1.0, -2.0, 0.5, 0.0], "f4")})


def test_signflip_is_minus_five_times_the_delta() -> None:
    """signflip returns global - 5 (local - global)."""
    out = bytes_to_weights(attack_update("signflip", GLOBAL, HONEST, seed=0))["w"]
    assert out.tolist() == [-5.0, 10.0, -2.5, 0.0]


def test_freerider_returns_the_global_model() -> None:
    """A free rider's delta is all zeros."""
    out = bytes_to_weights(attack_update("freerider", GLOBAL, HONEST, seed=0))["w"]
    assert not out.any()


def test_scale_and_noise() -> None:
    """scale multiplies by 10; noise is seeded and unrelated to the update."""
    scaled = bytes_to_weights(attack_update("scale", GLOBAL, HONEST, seed=0))["w"]
    assert scaled.tolist() == [10.0, -20.0, 5.0, 0.0]
    a = attack_update("noise", GLOBAL, HONEST, seed=1)
    assert a == attack_update("noise", GLOBAL, HONEST, seed=1) != HONEST


def test_drift_passes_screening_where_signflip_does_not() -> None:
    """drift stays in the honest direction (screened in), signflip points against it (out)."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=256)
    honest = [weights_to_bytes({"w": (base + 0.3 * rng.normal(size=256)).astype("f4")})]
    honest += [weights_to_bytes({"w": (base + 0.3 * rng.normal(size=256)).astype("f4")})]
    own = weights_to_bytes({"w": (base + 0.3 * rng.normal(size=256)).astype("f4")})
    drifted = attack_update("drift", GLOBAL, own, seed=3)
    flipped = attack_update("signflip", GLOBAL, own, seed=3)
    assert drifted != own
    assert screen_outliers([*honest, drifted]) == [None, None, None]
    assert screen_outliers([*honest, flipped])[-1] is not None


@pytest.mark.parametrize("spec", ["signflip", "bogus:2", "signflip:x"])
def test_bad_attack_spec(spec: str) -> None:
    """Malformed KIND:COUNT is refused."""
    with pytest.raises(ValueError):
        parse_attack(spec)
