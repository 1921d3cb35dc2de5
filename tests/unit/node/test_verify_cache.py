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


def test_caches_stay_bounded_and_keep_the_newest() -> None:
    """Every height adds verified results and aggregates; the caches keep at most their sizes,
    dropping the oldest, and what was dropped is verified for real again (a miss)."""
    verifier = CachingVerifier(BlsVerifier(), size=8, parts_size=4)
    signer = signers(1)[0]
    signatures = [signer.sign(MESSAGE + b"%d" % i) for i in range(12)]
    for i, signature in enumerate(signatures):
        assert verifier.verify(signer.public_key, MESSAGE + b"%d" % i, signature)
        verifier.aggregate([signature])
    assert len(verifier._ok) == 8 and len(verifier._parts) == 4
    misses = verifier.misses
    assert verifier.verify(signer.public_key, MESSAGE + b"11", signatures[11])
    assert verifier.misses == misses
    assert verifier.verify(signer.public_key, MESSAGE + b"0", signatures[0])
    assert verifier.misses == misses + 1
