"""BLS signatures, proofs of possession, identity and rogue keys, batch verification."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.crypto import (
    IDENTITY_PUBLIC_KEY,
    BlsSigner,
    BlsVerifier,
    FakeSigner,
    FakeVerifier,
    batch_verify_same_message,
)
from consensus.genesis import InvalidGenesis, make_genesis, validate_genesis
from consensus.types import PublicKey


@pytest.fixture(scope="module")
def bls() -> tuple[list[BlsSigner], BlsVerifier]:
    return [BlsSigner(bytes([i + 1]) * 32) for i in range(4)], BlsVerifier()


def test_bls_sign_and_verify(bls) -> None:  # type: ignore[no-untyped-def]
    """A BLS signature verifies for its key and message only."""
    signers, verifier = bls
    sig = signers[0].sign(b"msg")
    assert len(sig) == 96 and len(signers[0].public_key) == 48
    assert verifier.verify(signers[0].public_key, b"msg", sig)
    assert not verifier.verify(signers[1].public_key, b"msg", sig)
    assert not verifier.verify(signers[0].public_key, b"other", sig)


def test_identity_public_key_is_rejected(bls) -> None:  # type: ignore[no-untyped-def]
    """The identity point is never a usable key, and a genesis naming it is refused."""
    signers, verifier = bls
    assert not verifier.valid_public_key(IDENTITY_PUBLIC_KEY)
    genesis = make_genesis("c", signers)
    member = dataclasses.replace(genesis.validators[1], public_key=IDENTITY_PUBLIC_KEY)
    bad = dataclasses.replace(
        genesis, validators=(genesis.validators[0], member, *genesis.validators[2:])
    )
    with pytest.raises(InvalidGenesis, match="identity"):
        validate_genesis(bad, verifier)


def test_rogue_key_without_possession_is_rejected(bls) -> None:  # type: ignore[no-untyped-def]
    """A key whose proof of possession is someone else's (rogue-key attack) is refused."""
    signers, verifier = bls
    genesis = make_genesis("c", signers)
    validate_genesis(genesis, verifier)
    rogue = dataclasses.replace(
        genesis.validators[3], proof_of_possession=genesis.validators[2].proof_of_possession
    )
    bad = dataclasses.replace(genesis, validators=(*genesis.validators[:3], rogue))
    with pytest.raises(InvalidGenesis, match="proof of possession"):
        validate_genesis(bad, verifier)


def test_malformed_public_key_is_rejected(bls) -> None:  # type: ignore[no-untyped-def]
    """Bytes that are not a G1 point are not a key."""
    _, verifier = bls
    assert not verifier.valid_public_key(PublicKey(b"\x00" * 48))
    assert not verifier.valid_public_key(PublicKey(b"\x8f" * 47))


def test_aggregate_of_same_message(bls) -> None:  # type: ignore[no-untyped-def]
    """One 96-byte aggregate verifies all signers of one message, and no subset."""
    signers, verifier = bls
    sigs = [s.sign(b"vote") for s in signers]
    agg = verifier.aggregate(sigs)
    keys = [s.public_key for s in signers]
    assert len(agg) == 96
    assert verifier.verify_same_message(keys, b"vote", agg)
    assert not verifier.verify_same_message(keys[:3], b"vote", agg)


def test_batch_verification_finds_the_bad_signature(bls) -> None:  # type: ignore[no-untyped-def]
    """The batch check fails on one bad signature and the fallback names exactly that one."""
    signers, verifier = bls
    sigs = [s.sign(b"vote") for s in signers]
    sigs[2] = signers[2].sign(b"other")
    keys = [s.public_key for s in signers]
    assert batch_verify_same_message(verifier, keys, b"vote", sigs) == [True, True, False, True]
    good = [s.sign(b"vote") for s in signers]
    assert batch_verify_same_message(verifier, keys, b"vote", good) == [True] * 4


def test_batch_verification_with_garbage_bytes(bls) -> None:  # type: ignore[no-untyped-def]
    """A signature that is not a curve point fails alone, not the whole batch."""
    signers, verifier = bls
    sigs = [s.sign(b"m") for s in signers]
    sigs[0] = b"\x01" * 96
    keys = [s.public_key for s in signers]
    assert batch_verify_same_message(verifier, keys, b"m", sigs) == [False, True, True, True]


def test_parsed_signatures_are_reused_and_garbage_is_refused_each_time() -> None:
    """A signature parsed once is not parsed again (the commit certificate re-aggregates the
    batch's precommits) and still verifies for its message only; bytes that are no point are
    refused on every call, in verify and in aggregate, and never remembered."""
    import blspy

    signer, verifier = BlsSigner(b"\x07" * 32), BlsVerifier()
    sig = signer.sign(b"precommit")
    parses: list[bytes] = []
    real = blspy.G2Element.from_bytes

    parts: list[bytes] = []
    real_part = blspy.G2Element.from_bytes_unchecked

    class Counting:
        @staticmethod
        def from_bytes(data: bytes):  # type: ignore[no-untyped-def]
            parses.append(bytes(data))
            return real(data)

        @staticmethod
        def from_bytes_unchecked(data: bytes):  # type: ignore[no-untyped-def]
            parts.append(bytes(data))
            return real_part(data)

    verifier._blspy = type("B", (), {"G1Element": blspy.G1Element, "G2Element": Counting})
    assert verifier.verify(signer.public_key, b"precommit", sig)
    assert verifier.aggregate([sig, sig]) and verifier.verify(signer.public_key, b"precommit", sig)
    assert not verifier.verify(signer.public_key, b"prevote", sig)
    assert parses == [bytes(sig)] and parts == []
    garbage = b"\x01" * 96
    for _ in range(2):
        assert not verifier.verify(signer.public_key, b"precommit", garbage)
        with pytest.raises(ValueError):
            verifier.aggregate([sig, garbage])
    assert parses == [bytes(sig)] + [garbage] * 2 and parts == [garbage] * 2
    other = BlsSigner(b"\x08" * 32).sign(b"precommit")
    verifier.aggregate([other, sig])
    verifier.aggregate([other])
    assert parts == [garbage] * 2 + [bytes(other)]  # a part is parsed once, unchecked


def _outside_subgroup() -> bytes:
    """A compressed G2 encoding of a point on the curve but outside the prime-order subgroup
    (almost every curve point is: the cofactor is huge)."""
    import hashlib

    import blspy

    for i in range(1000):
        data = bytearray(hashlib.sha512(b"bcfl-off-subgroup-%d" % i).digest() * 2)[:96]
        data[0] = (data[0] & 0x1F) | 0x80  # compressed, not infinity, sign bit clear
        data[48] &= 0x1F  # both halves of x below the field modulus
        try:
            blspy.G2Element.from_bytes_unchecked(bytes(data))
        except (ValueError, RuntimeError):
            continue
        return bytes(data)
    raise AssertionError("no curve point found")


def test_a_part_outside_the_subgroup_never_verifies(bls) -> None:  # type: ignore[no-untyped-def]
    """Aggregation parses its parts without the subgroup check; the sum is checked when it is
    verified, so a signature outside the subgroup fails its batch, and the fallback refuses
    exactly that one; alone, it is refused by the checked parse."""
    import blspy

    signers, verifier = bls
    bad = _outside_subgroup()
    with pytest.raises(ValueError):
        blspy.G2Element.from_bytes(bad)
    keys = [s.public_key for s in signers]
    sigs = [s.sign(b"vote") for s in signers]
    sigs[1] = bad
    aggregate = verifier.aggregate(sigs)  # accepted as a part
    assert not verifier.verify_same_message(keys, b"vote", aggregate)
    assert batch_verify_same_message(verifier, keys, b"vote", sigs) == [True, False, True, True]
    assert not verifier.verify(keys[1], b"vote", bad)
    messages = [b"receipt-%d" % i for i in range(4)]
    distinct = [s.sign(m) for s, m in zip(signers, messages, strict=True)]
    assert verifier.verify_distinct_messages(keys, messages, verifier.aggregate(distinct))
    distinct[3] = bad
    assert not verifier.verify_distinct_messages(keys, messages, verifier.aggregate(distinct))


def test_fake_signatures_detect_forgery() -> None:
    """The fast test double still refuses a signature made with another key."""
    signers = [FakeSigner(bytes([i]) * 32) for i in range(3)]
    verifier = FakeVerifier.for_signers(signers)
    sig = signers[0].sign(b"m")
    assert verifier.verify(signers[0].public_key, b"m", sig)
    assert not verifier.verify(signers[1].public_key, b"m", sig)
    agg = verifier.aggregate([s.sign(b"m") for s in signers])
    keys = [s.public_key for s in signers]
    assert verifier.verify_same_message(keys, b"m", agg)
    assert not verifier.verify_same_message(keys[:2], b"m", agg)
    assert batch_verify_same_message(verifier, keys, b"m", [sig, sig, sig]) == [True, False, False]
    assert verifier.verify_possession(signers[0].public_key, signers[0].prove_possession())
    assert not verifier.verify_possession(signers[0].public_key, signers[1].prove_possession())


def test_parse_caches_stay_bounded() -> None:
    """A long-running node parses new signatures every height; each cache keeps at most
    PARSE_CACHE_ENTRIES of them, and a signature parsed after the cache was emptied still
    verifies."""
    from consensus import crypto

    signer, verifier = BlsSigner(b"\x09" * 32), BlsVerifier()
    signatures = [signer.sign(b"h%d" % i) for i in range(crypto.PARSE_CACHE_ENTRIES + 10)]
    for sig in signatures:
        verifier.aggregate([sig])
        verifier._signature(sig)
    assert 0 < len(verifier._aggregands) <= crypto.PARSE_CACHE_ENTRIES
    assert 0 < len(verifier._signatures) <= crypto.PARSE_CACHE_ENTRIES
    last = crypto.PARSE_CACHE_ENTRIES + 9
    assert verifier.verify(signer.public_key, b"h%d" % last, signatures[last])
    assert not verifier.verify(signer.public_key, b"h0", signatures[last])
