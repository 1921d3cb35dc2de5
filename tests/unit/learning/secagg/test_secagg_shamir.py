"""Shamir sharing (learning/secagg/shamir.py): t shares recover, t - 1 do not, bad shares fail."""

from __future__ import annotations

import itertools
import secrets

import pytest

from learning.secagg.params import SecAggError
from learning.secagg.shamir import PRIME, SHARE_BYTES, Share, combine, split


def test_every_t_subset_recovers_the_secret() -> None:
    """Any 3 of 5 shares give the secret back."""
    secret = secrets.token_bytes(32)
    shares = split(secret, 3, [1, 2, 3, 4, 5])
    for subset in itertools.combinations(shares, 3):
        assert combine(subset, 3) == secret


def test_fewer_than_t_shares_is_a_clear_error() -> None:
    """Two shares of a 3-threshold secret: the error names the counts and the threshold."""
    shares = split(secrets.token_bytes(32), 3, [1, 2, 3, 4])
    with pytest.raises(SecAggError, match="2 shares, the threshold is 3") as info:
        combine(shares[:2], 3, "the seed")
    assert info.value.reason == "secagg-threshold"


def test_t_minus_one_shares_are_consistent_with_any_secret() -> None:
    """Two shares of a 3-threshold sharing fit a polynomial hiding any other secret as well."""
    shares = split(secrets.token_bytes(32), 3, [1, 2, 3])
    other = secrets.token_bytes(32)
    # the degree-2 polynomial through (0, other), share 1 and share 2, evaluated at x = 3
    points = [(0, int.from_bytes(other, "big")), (1, shares[0].y), (2, shares[1].y)]
    y3 = 0
    for xi, yi in points:
        num, den = 1, 1
        for xj, _ in points:
            if xj != xi:
                num, den = num * (3 - xj), den * (xi - xj)
        y3 = (y3 + yi * num * pow(den, -1, PRIME)) % PRIME
    assert combine([shares[0], shares[1], Share(3, y3)], 3) == other
    assert combine(shares, 3) != other


def test_an_inconsistent_extra_share_is_detected() -> None:
    """With t + 1 shares, one altered share is an error, not a wrong secret."""
    shares = split(secrets.token_bytes(32), 2, [1, 2, 3])
    bad = Share(3, (shares[2].y + 1) % PRIME)
    with pytest.raises(SecAggError, match="inconsistent"):
        combine([shares[0], shares[1], bad], 2)


def test_shares_are_constant_size_and_decode_strictly() -> None:
    """Every share encodes to the same size; x = 0 and out-of-field values are refused."""
    shares = split(secrets.token_bytes(32), 2, [1, 9, 4096])
    assert {len(s.to_bytes()) for s in shares} == {SHARE_BYTES}
    assert [Share.from_bytes(s.to_bytes()) for s in shares] == shares
    with pytest.raises(SecAggError, match="outside the field"):
        Share.from_bytes(bytes(SHARE_BYTES))
    with pytest.raises(SecAggError, match="70 bytes"):
        Share.from_bytes(bytes(3))
