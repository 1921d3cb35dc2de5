"""Strict decoding of the CBOR fields every secure-aggregation message is made of (wire.py for
the in-process protocol, chained.py for the chain's): one malformed field is one sentence and the
reason `secagg-malformed`, never an exception of cbor2's."""

from __future__ import annotations

from typing import Any

import cbor2

from learning.secagg.params import SecAggError

MAX_PARTICIPANTS = 1024  # the most quantised updates a 2^32 modulus sums at the defaults
MALFORMED = "secagg-malformed"


def malformed(what: str) -> SecAggError:
    """The error for a malformed `what` (a message or one of its parts)."""
    return SecAggError(f"malformed secure aggregation {what}", reason=MALFORMED)


def loads(data: bytes, what: str, limit: int | None = None) -> Any:
    """The canonical CBOR value of `data`, at most `limit` bytes when given."""
    if limit is not None and len(data) > limit:
        raise SecAggError(
            f"a secure aggregation {what} of {len(data)} bytes exceeds {limit}", reason=MALFORMED
        )
    try:
        value = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several types on garbage; all mean "malformed"
        raise malformed(what) from exc
    if cbor2.dumps(value, canonical=True) != data:
        raise SecAggError(f"a secure aggregation {what} is not canonical CBOR", reason=MALFORMED)
    return value


def index(value: Any, what: str) -> int:
    """A participant index below MAX_PARTICIPANTS."""
    if type(value) is not int or not 0 <= value < MAX_PARTICIPANTS:
        raise malformed(what)
    return value


def raw(value: Any, size: int, what: str) -> bytes:
    """A byte string of exactly `size` bytes."""
    if type(value) is not bytes or len(value) != size:
        raise malformed(what)
    return value


def pairs(value: Any, size: int, what: str) -> dict[int, bytes]:
    """A list of [index, `size` bytes] pairs with distinct indices, as a map."""
    if type(value) is not list or len(value) > MAX_PARTICIPANTS:
        raise malformed(what)
    out: dict[int, bytes] = {}
    for item in value:
        if type(item) is not list or len(item) != 2:
            raise malformed(what)
        key = index(item[0], what)
        if key in out:
            raise malformed(what)
        out[key] = raw(item[1], size, what)
    return out
