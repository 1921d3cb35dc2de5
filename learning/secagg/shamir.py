"""Shamir t-of-n secret sharing of 32-byte secrets over the Mersenne prime 2^521 - 1.

The secret is the constant term of a random polynomial of degree t - 1 whose other coefficients
come from `secrets`; the share of participant x (x >= 1) is the polynomial's value at x.
Any t shares give the secret back by Lagrange interpolation at 0; t - 1 shares are consistent
with every secret, so they tell nothing (Shamir 1979). Shares are constant-size: a 4-byte x and
a 66-byte value. Extra shares beyond t are checked against the interpolated polynomial, so an
inconsistent share is an error, not a silently wrong secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from learning.secagg.params import SecAggError

PRIME = (1 << 521) - 1
VALUE_BYTES = 66
SHARE_BYTES = 4 + VALUE_BYTES
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class Share:
    """One share: the evaluation point x and the polynomial's value there."""

    x: int
    y: int

    def to_bytes(self) -> bytes:
        """The constant-size encoding: x (4 bytes) then y (66 bytes), big-endian."""
        return self.x.to_bytes(4, "big") + self.y.to_bytes(VALUE_BYTES, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Decode a share; refuse a wrong length, x = 0 or a value outside the field."""
        if len(data) != SHARE_BYTES:
            raise SecAggError(f"a Shamir share is {SHARE_BYTES} bytes, got {len(data)}")
        x = int.from_bytes(data[:4], "big")
        y = int.from_bytes(data[4:], "big")
        if x == 0 or y >= PRIME:
            raise SecAggError("a Shamir share lies outside the field")
        return cls(x, y)


def split(secret: bytes, threshold: int, xs: Sequence[int]) -> list[Share]:
    """Share a 32-byte secret among the points `xs` so that any `threshold` of them recover it."""
    if len(secret) != SECRET_BYTES:
        raise SecAggError(f"a shared secret is {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise SecAggError(f"threshold {threshold} is not within 1 .. {len(xs)} shares")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise SecAggError("Shamir points must be distinct and non-zero")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return [Share(x, _evaluate(coefficients, x)) for x in xs]


def combine(shares: Sequence[Share], threshold: int, what: str = "the secret") -> bytes:
    """Recover a secret from at least `threshold` shares; a clear error with fewer."""
    points = sorted({s.x: s for s in shares}.values(), key=lambda s: s.x)
    if len(points) != len(shares):
        raise SecAggError(f"two shares of {what} have the same point")
    if len(points) < threshold:
        raise SecAggError(
            f"cannot recover {what}: {len(points)} shares, the threshold is {threshold}",
            reason="secagg-threshold",
        )
    basis, extra = points[:threshold], points[threshold:]
    value = _interpolate(basis, 0)
    if any(_interpolate(basis, s.x) != s.y for s in extra):
        raise SecAggError(f"the shares of {what} are inconsistent")
    if value >= 1 << (8 * SECRET_BYTES):
        raise SecAggError(f"the shares of {what} do not give a {SECRET_BYTES}-byte secret")
    return value.to_bytes(SECRET_BYTES, "big")


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coefficients):
        acc = (acc * x + c) % PRIME
    return acc


def _interpolate(points: Sequence[Share], at: int) -> int:
    total = 0
    for i, p in enumerate(points):
        num, den = 1, 1
        for j, q in enumerate(points):
            if i != j:
                num = num * (at - q.x) % PRIME
                den = den * (p.x - q.x) % PRIME
        total = (total + p.y * num * pow(den, -1, PRIME)) % PRIME
    return total
