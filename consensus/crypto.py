"""Signatures behind two small interfaces (docs/ARCHITECTURE.md "Wire and storage formats").

`BlsSigner` / `BlsVerifier` use BLS12-381 in the proof-of-possession scheme (blspy
`PopSchemeMPL`): every genesis key must come with a proof of possession (rogue-key attack), the
identity public key is rejected, and certificates are a signer bitfield plus one 96-byte aggregate.

Batch verification: votes for one message (same height, round, type, block) are checked with a
single fast aggregate verification (two pairings whatever their number); only when that fails
are the signatures checked one by one to find the bad ones (`batch_verify_same_message`).

`FakeSigner` / `FakeVerifier` are deterministic keyed hashes with the same sizes, for simulations
over many seeds: a signature can only be made with the signer's secret, so forgeries are still
detected, but at a fraction of the cost. Never use them outside tests and simulations.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from consensus.types import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, PublicKey, Signature

IDENTITY_PUBLIC_KEY = PublicKey(b"\xc0" + bytes(PUBLIC_KEY_SIZE - 1))


class Signer(Protocol):
    """Holds one secret key and signs sign-bytes with it."""

    @property
    def public_key(self) -> PublicKey:
        """The 48-byte public key."""
        ...

    def sign(self, message: bytes) -> Signature:
        """Return the 96-byte signature of `message`."""
        ...

    def prove_possession(self) -> Signature:
        """Return the proof of possession of the secret key."""
        ...


class Verifier(Protocol):
    """Checks signatures; stateless apart from caches."""

    def valid_public_key(self, public_key: bytes) -> bool:
        """True when `public_key` decodes to a usable (non-identity) key."""
        ...

    def verify_possession(self, public_key: bytes, proof: bytes) -> bool:
        """True when `proof` proves possession of the secret key of `public_key`."""
        ...

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """True when `signature` is `public_key`'s signature of `message`."""
        ...

    def aggregate(self, signatures: Sequence[bytes]) -> Signature:
        """Aggregate signatures into one (raises ValueError on a malformed one)."""
        ...

    def verify_same_message(
        self, public_keys: Sequence[bytes], message: bytes, aggregate: bytes
    ) -> bool:
        """True when `aggregate` aggregates the signatures of all keys over one message."""
        ...

    def verify_distinct_messages(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], aggregate: bytes
    ) -> bool:
        """True when `aggregate` aggregates key i's signature of message i, for every i."""
        ...


def batch_verify_same_message(
    verifier: Verifier, public_keys: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
) -> list[bool]:
    """Verify many signatures of one message: one aggregate check, per-signature on failure."""
    if not signatures:
        return []
    if len(signatures) == 1:
        return [verifier.verify(public_keys[0], message, signatures[0])]
    try:
        aggregate = verifier.aggregate(signatures)
    except ValueError:
        aggregate = None
    if aggregate is not None and verifier.verify_same_message(public_keys, message, aggregate):
        return [True] * len(signatures)
    return [
        verifier.verify(pk, message, sig) for pk, sig in zip(public_keys, signatures, strict=True)
    ]


# ------------------------------------------------------------------------------------------
# BLS (blspy PopSchemeMPL)
# ------------------------------------------------------------------------------------------


class BlsSigner:
    """A BLS12-381 secret key derived from a 32-byte seed (PopSchemeMPL.key_gen)."""

    def __init__(self, seed: bytes) -> None:
        import blspy

        if len(seed) != 32:
            raise ValueError("a BLS seed is exactly 32 bytes")
        self._scheme = blspy.PopSchemeMPL
        self._secret = blspy.PopSchemeMPL.key_gen(seed)
        self._public_key = PublicKey(bytes(self._secret.get_g1()))

    @property
    def public_key(self) -> PublicKey:
        """The 48-byte compressed G1 public key."""
        return self._public_key

    def sign(self, message: bytes) -> Signature:
        """Sign with the PoP scheme's signing domain."""
        return Signature(bytes(self._scheme.sign(self._secret, message)))

    def prove_possession(self) -> Signature:
        """PopSchemeMPL.pop_prove."""
        return Signature(bytes(self._scheme.pop_prove(self._secret)))


# Parsed signatures kept per cache. A signature is parsed again within a height or the next
# (its batch, then the commit certificate that carries it), and a height brings about 5n new
# ones, so 2,048 covers several heights at n = 32. A parsed point and its key cost about
# 0.6 KB: 16,384 entries had each cache grow by 10 MB before it was emptied.
PARSE_CACHE_ENTRIES = 2048


def _parse_cached(
    signature: bytes, cache: dict[bytes, object], parse: Callable[[bytes], object]
) -> object | None:
    """`parse(signature)` remembered in `cache` (emptied past `PARSE_CACHE_ENTRIES`); None,
    and nothing remembered, for bytes of the wrong size or that `parse` refuses."""
    signature = bytes(signature)
    parsed = cache.get(signature)
    if parsed is not None:
        return parsed
    if len(signature) != SIGNATURE_SIZE:
        return None
    try:
        parsed = parse(signature)
    except (ValueError, RuntimeError):
        return None
    if len(cache) >= PARSE_CACHE_ENTRIES:
        cache.clear()
    cache[signature] = parsed
    return parsed


class BlsVerifier:
    """BLS verification with a cache of decoded public keys (decoding checks the subgroup)."""

    def __init__(self) -> None:
        import blspy

        self._blspy = blspy
        self._scheme = blspy.PopSchemeMPL
        self._keys: dict[bytes, object] = {}
        self._signatures: dict[bytes, object] = {}
        self._aggregands: dict[bytes, object] = {}
        self._possession_ok: set[tuple[bytes, bytes]] = set()

    def _key(self, public_key: bytes) -> object | None:
        key = self._keys.get(public_key)
        if key is None:
            if len(public_key) != PUBLIC_KEY_SIZE or public_key == IDENTITY_PUBLIC_KEY:
                return None
            try:
                key = self._blspy.G1Element.from_bytes(public_key)
            except (ValueError, RuntimeError):
                return None
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[public_key] = key
        return key

    def _signature(self, signature: bytes) -> object | None:
        """The parsed G2 point (decompressed and subgroup-checked, ~0.1 ms), cached by its
        bytes: a vote's signature is parsed in its batch and again in the commit certificate.
        A malformed one is not cached (it is refused every time)."""
        return _parse_cached(signature, self._signatures, self._blspy.G2Element.from_bytes)

    def _aggregand(self, signature: bytes) -> object | None:
        """A signature parsed to be summed into an aggregate: decompressed and on the curve,
        but not subgroup-checked (~0.04 ms, against ~0.12 ms for `_signature`).

        What is verified is the sum, and every `verify_*` parses its aggregate with
        `_signature`, which checks the subgroup (as the IETF BLS draft's Aggregate and
        CoreAggregateVerify do). A part outside the subgroup puts the sum outside it, unless
        another part cancels it: that takes two colluding signers, who can already cancel
        any offset between their signatures (docs/THREAT-MODEL.md "Beyond one insider"). A
        batch that fails is verified signature by signature, with `_signature`. Cached like
        `_signature`; a point `_signature` already checked is reused."""
        checked = self._signatures.get(bytes(signature))
        if checked is not None:
            return checked
        unchecked = self._blspy.G2Element.from_bytes_unchecked
        return _parse_cached(signature, self._aggregands, unchecked)

    def valid_public_key(self, public_key: bytes) -> bool:
        """Well-formed, in the subgroup, and not the identity."""
        return self._key(public_key) is not None

    def verify_possession(self, public_key: bytes, proof: bytes) -> bool:
        """PopSchemeMPL.pop_verify (cached: every core checks every genesis key)."""
        if (public_key, proof) in self._possession_ok:
            return True
        key, sig = self._key(public_key), self._signature(proof)
        if key is None or sig is None or not self._scheme.pop_verify(key, sig):
            return False
        self._possession_ok.add((bytes(public_key), bytes(proof)))
        return True

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """PopSchemeMPL.verify."""
        key, sig = self._key(public_key), self._signature(signature)
        if key is None or sig is None:
            return False
        return bool(self._scheme.verify(key, message, sig))

    def aggregate(self, signatures: Sequence[bytes]) -> Signature:
        """PopSchemeMPL.aggregate (the parts are not subgroup-checked: `_aggregand`)."""
        parsed = [self._aggregand(s) for s in signatures]
        if any(p is None for p in parsed):
            raise ValueError("malformed signature")
        return Signature(bytes(self._scheme.aggregate(parsed)))

    def verify_same_message(
        self, public_keys: Sequence[bytes], message: bytes, aggregate: bytes
    ) -> bool:
        """PopSchemeMPL.fast_aggregate_verify (safe because every key has a proof of possession)."""
        keys = [self._key(pk) for pk in public_keys]
        sig = self._signature(aggregate)
        if not keys or sig is None or any(k is None for k in keys):
            return False
        return bool(self._scheme.fast_aggregate_verify(keys, message, sig))

    def verify_distinct_messages(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], aggregate: bytes
    ) -> bool:
        """PopSchemeMPL.aggregate_verify."""
        keys = [self._key(pk) for pk in public_keys]
        sig = self._signature(aggregate)
        if not keys or len(keys) != len(messages) or sig is None or any(k is None for k in keys):
            return False
        return bool(self._scheme.aggregate_verify(keys, list(messages), sig))


# ------------------------------------------------------------------------------------------
# Fast deterministic doubles for simulations
# ------------------------------------------------------------------------------------------

_MODULUS = 1 << (8 * SIGNATURE_SIZE)


def _fake_signature(secret: bytes, message: bytes) -> int:
    mac = hmac.new(secret, message, hashlib.sha512).digest()
    tail = hmac.new(secret, b"tail" + message, hashlib.sha256).digest()
    return int.from_bytes(mac + tail, "big")


class FakeSigner:
    """Keyed-hash signer with BLS sizes: 48-byte public key, 96-byte signature."""

    def __init__(self, seed: bytes) -> None:
        self.secret = hashlib.sha256(b"bcfl-fake-secret" + seed).digest()
        digest = hashlib.sha512(b"bcfl-fake-public" + self.secret).digest()
        self._public_key = PublicKey(b"\x8f" + digest[: PUBLIC_KEY_SIZE - 1])

    @property
    def public_key(self) -> PublicKey:
        """Derived from the secret; the matching FakeVerifier knows the secret."""
        return self._public_key

    def sign(self, message: bytes) -> Signature:
        """HMAC of the message, 96 bytes."""
        return Signature(_fake_signature(self.secret, message).to_bytes(SIGNATURE_SIZE, "big"))

    def prove_possession(self) -> Signature:
        """A signature over the public key under a separate domain."""
        return self.sign(b"bcfl-fake-pop" + self._public_key)


class FakeVerifier:
    """Verifies FakeSigner signatures; knows the secrets of the keys it was given.

    An aggregate is the sum of the signatures modulo 2**768, so it detects a missing, extra or
    forged member just like a BLS aggregate.
    """

    def __init__(self, secrets: Mapping[bytes, bytes]) -> None:
        self._secrets = dict(secrets)

    @classmethod
    def for_signers(cls, signers: Sequence[FakeSigner]) -> FakeVerifier:
        """A verifier that knows every given signer's key."""
        return cls({bytes(s.public_key): s.secret for s in signers})

    def valid_public_key(self, public_key: bytes) -> bool:
        """Known keys only; the identity key never."""
        return public_key != IDENTITY_PUBLIC_KEY and public_key in self._secrets

    def verify_possession(self, public_key: bytes, proof: bytes) -> bool:
        """Checks the FakeSigner.prove_possession signature."""
        return self.verify(public_key, b"bcfl-fake-pop" + public_key, proof)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Recompute the keyed hash."""
        secret = self._secrets.get(public_key)
        if secret is None or len(signature) != SIGNATURE_SIZE:
            return False
        expected = _fake_signature(secret, message).to_bytes(SIGNATURE_SIZE, "big")
        return hmac.compare_digest(expected, signature)

    def aggregate(self, signatures: Sequence[bytes]) -> Signature:
        """Sum modulo 2**768."""
        total = 0
        for sig in signatures:
            if len(sig) != SIGNATURE_SIZE:
                raise ValueError("malformed signature")
            total = (total + int.from_bytes(sig, "big")) % _MODULUS
        return Signature(total.to_bytes(SIGNATURE_SIZE, "big"))

    def verify_same_message(
        self, public_keys: Sequence[bytes], message: bytes, aggregate: bytes
    ) -> bool:
        """Recompute every member's signature and compare the sum."""
        return self.verify_distinct_messages(public_keys, [message] * len(public_keys), aggregate)

    def verify_distinct_messages(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], aggregate: bytes
    ) -> bool:
        """Recompute every member's signature and compare the sum."""
        if not public_keys or len(public_keys) != len(messages):
            return False
        total = 0
        for pk, message in zip(public_keys, messages, strict=True):
            secret = self._secrets.get(pk)
            if secret is None:
                return False
            total = (total + _fake_signature(secret, message)) % _MODULUS
        return hmac.compare_digest(total.to_bytes(SIGNATURE_SIZE, "big"), aggregate)
