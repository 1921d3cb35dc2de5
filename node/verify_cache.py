"""A verifier that remembers successful BLS checks, so a node verifies each signature once.

Every signed message is checked twice in a node: by the gossip topic validator before it is
relayed, then by the consensus core (in a batch, as one aggregate check). Each BLS check costs
about a millisecond of CPU, and at n = 4 a height carries dozens of signed messages, so the
second check was a visible share of a node's CPU per height. This wrapper caches only
*successful* results (a failure is always recomputed), keyed by the exact bytes checked, in a
bounded LRU: it can make a node faster, never more permissive.

An aggregate built here (`aggregate`) remembers its parts; `verify_same_message` on such an
aggregate succeeds without a pairing when every part was already verified individually over
that message by these keys.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from consensus.crypto import Verifier
from consensus.types import Signature

# Verified results kept (a 32-byte key each); a result is asked for again within a height or
# the next, and a height verifies at most a few n signatures and aggregates.
CACHE_SIZE = 4096
# Aggregates whose parts are kept. Each holds n signatures (about 130 bytes each): 16,384 of
# them would hold 34 MB at n = 16. A height builds about five.
PARTS_SIZE = 256


class CachingVerifier:
    """Wraps a `Verifier`; the same answers, fewer pairings."""

    def __init__(
        self, inner: Verifier, size: int = CACHE_SIZE, parts_size: int = PARTS_SIZE
    ) -> None:
        self.inner = inner
        self.size = size
        self.parts_size = parts_size
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._parts: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _remember_ok(self, key: bytes) -> None:
        self._ok[key] = None
        self._ok.move_to_end(key)
        if len(self._ok) > self.size:
            self._ok.popitem(last=False)

    @staticmethod
    def _key(*parts: bytes | Sequence[bytes]) -> bytes:
        digest = hashlib.sha256()
        for part in parts:
            items = [part] if isinstance(part, bytes | bytearray) else list(part)
            digest.update(len(items).to_bytes(4, "big"))
            for item in items:
                digest.update(len(item).to_bytes(4, "big"))
                digest.update(item)
        return digest.digest()

    def _known(self, key: bytes) -> bool:
        if key in self._ok:
            self._ok.move_to_end(key)
            self.hits += 1
            return True
        self.misses += 1
        return False

    def valid_public_key(self, public_key: bytes) -> bool:
        return self.inner.valid_public_key(public_key)

    def verify_possession(self, public_key: bytes, proof: bytes) -> bool:
        return self.inner.verify_possession(public_key, proof)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        key = self._key(b"one", public_key, message, signature)
        if self._known(key):
            return True
        ok = self.inner.verify(public_key, message, signature)
        if ok:
            self._remember_ok(key)
        return ok

    def aggregate(self, signatures: Sequence[bytes]) -> Signature:
        result = self.inner.aggregate(signatures)
        self._parts[bytes(result)] = tuple(bytes(s) for s in signatures)
        if len(self._parts) > self.parts_size:
            self._parts.popitem(last=False)
        return result

    def verify_same_message(
        self, public_keys: Sequence[bytes], message: bytes, aggregate: bytes
    ) -> bool:
        key = self._key(b"same", public_keys, message, aggregate)
        if self._known(key):
            return True
        parts = self._parts.get(bytes(aggregate))
        if (
            parts is not None
            and len(parts) == len(public_keys)
            and all(
                self._key(b"one", pk, message, sig) in self._ok
                for pk, sig in zip(public_keys, parts, strict=True)
            )
        ):
            self._remember_ok(key)
            return True
        ok = self.inner.verify_same_message(public_keys, message, aggregate)
        if ok:
            self._remember_ok(key)
        return ok

    def verify_distinct_messages(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], aggregate: bytes
    ) -> bool:
        key = self._key(b"distinct", public_keys, messages, aggregate)
        if self._known(key):
            return True
        ok = self.inner.verify_distinct_messages(public_keys, messages, aggregate)
        if ok:
            self._remember_ok(key)
        return ok
