"""A bounded memo of a pure function of immutable objects, by object identity.

The chain's ids (codec.block_hash, codec.receipt_hash) are SHA-256 of a canonical encoding, and
one decoded block or receipt is hashed several times while it is checked, stored and built on
(docs/ARCHITECTURE.md "Wire and storage formats"). Keyed by identity, not equality: two equal
values may still differ in encoding (0.0 and -0.0 compare equal), and only the very same object
is certain to give the same bytes. The memo holds each object it keys, so no other object can
take its id while the entry lives; it is emptied when full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class IdentityMemo(Generic[K, V]):
    """`memo(obj, fn)` is `fn(obj)`, computed once per object (at most `size` kept)."""

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int) -> None:
        self._entries: dict[int, tuple[K, V]] = {}
        self._size = size

    def __call__(self, obj: K, fn: Callable[[K], V]) -> V:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        value = fn(obj)
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[id(obj)] = (obj, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
