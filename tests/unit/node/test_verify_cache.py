"""The caching verifier gives the inner verifier's answers and skips repeated BLS pairings."""

from __future__ import annotations

from consensus.crypto import BlsSigner, BlsVerifier
from node.verify_cache import CachingVerifier

MESSAGE = b"bcfl/prevote/v1 test"


def signers(n: int) -> list[BlsSigner]:
    return [BlsSigner(bytes([i + 1]) * 32) for i in range(n)]


def test_repeated_verification_hits_the_cache() -> None:
    """A signature verified once is answered from the cache the second time."""
    verifier = CachingVerifier(BlsVerifier())
    signer = signers(1)[0]
    signature = signer.sign(MESSAGE)
    assert verifier.verify(signer.public_key, MESSAGE, signature)
    assert verifier.verify(signer.public_key, MESSAGE, signature)
    assert verifier.hits == 1


def test_failures_are_never_cached() -> None:
    """A wrong signature is rejected every time, and a right one after it still verifies."""
    verifier = CachingVerifier(BlsVerifier())
    a, b = signers(2)
    forged = b.sign(MESSAGE)
    assert not verifier.verify(a.public_key, MESSAGE, forged)
    assert not verifier.verify(a.public_key, MESSAGE, forged)
    assert verifier.hits == 0
    assert verifier.verify(a.public_key, MESSAGE, a.sign(MESSAGE))


def test_aggregate_of_verified_parts_needs_no_pairing() -> None:
    """An aggregate of individually verified signatures is accepted from the cache."""
    verifier = CachingVerifier(BlsVerifier())
    keys = signers(3)
    signatures = [k.sign(MESSAGE) for k in keys]
    for key, signature in zip(keys, signatures, strict=True):
        assert verifier.verify(key.public_key, MESSAGE, signature)
    aggregate = verifier.aggregate(signatures)
    hits = verifier.hits
    assert verifier.verify_same_message([k.public_key for k in keys], MESSAGE, aggregate)
    assert verifier.hits == hits  # the shortcut is not a plain cache hit, but no miss either
    assert verifier.misses == 3 + 1


def test_aggregate_with_an_unverified_part_is_checked_for_real() -> None:
    """A forged part makes the aggregate fail, as with the inner verifier."""
    verifier = CachingVerifier(BlsVerifier())
    keys = signers(3)
    signatures = [k.sign(MESSAGE) for k in keys[:2]] + [keys[0].sign(MESSAGE)]
    aggregate = verifier.aggregate(signatures)
    assert not verifier.verify_same_message([k.public_key for k in keys], MESSAGE, aggregate)
    assert not BlsVerifier().verify_same_message([k.public_key for k in keys], MESSAGE, aggregate)
