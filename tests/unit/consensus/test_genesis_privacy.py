"""The genesis privacy policy: encoded canonically, bounded, and checked one sentence at a time."""

from __future__ import annotations

import dataclasses

import pytest

from consensus import codec
from consensus.codec import InvalidMessage, decode_as, encode
from consensus.crypto import FakeSigner, FakeVerifier
from consensus.genesis import InvalidGenesis, make_genesis, validate_genesis
from consensus.types import Genesis, Privacy

SIGNERS = [FakeSigner(bytes([i])) for i in range(4)]
VERIFIER = FakeVerifier.for_signers(SIGNERS)


def _genesis(privacy: Privacy, rule: str = "fedavg", **params: object) -> Genesis:
    signers = SIGNERS
    return make_genesis(
        "c", signers, privacy=privacy, aggregation_rule=rule, aggregation_params=dict(params)
    )


def test_privacy_round_trips_through_the_codec() -> None:
    """A genesis privacy policy decodes to itself and changes the genesis hash."""
    policy = Privacy(clip_norm=1.0, noise_multiplier=1.1, delta=1e-6, epsilon_budget=2.0)
    genesis = _genesis(policy)
    assert decode_as(encode(genesis), Genesis).privacy == policy
    assert codec.genesis_hash(genesis) != codec.genesis_hash(_genesis(Privacy()))


def test_default_privacy_is_off() -> None:
    """Without a policy the genesis has DP and secure aggregation off, and validates."""
    genesis = _genesis(Privacy())
    assert not genesis.privacy.dp_enabled and not genesis.privacy.secure_aggregation
    validate_genesis(genesis, VERIFIER)


def test_out_of_range_secagg_integers_do_not_decode() -> None:
    """A modulus of 2^100 bits is a lie the codec refuses, not a chain state."""
    genesis = _genesis(Privacy(secagg_modulus_bits=100))
    with pytest.raises(InvalidMessage, match="secagg_modulus_bits"):
        decode_as(encode(genesis), Genesis)


@pytest.mark.parametrize(
    ("policy", "sentence"),
    [
        (Privacy(clip_norm=1.0), "noise_multiplier must be positive"),
        (Privacy(noise_multiplier=1.0), "need privacy.clip_norm > 0"),
        (Privacy(clip_norm=1.0, noise_multiplier=1.0, delta=1.0), "delta must be in"),
        (Privacy(clip_norm=1.0, noise_multiplier=1.0, epsilon_budget=-1.0), "must be >= 0"),
        (Privacy(epsilon_budget=2.0), "need privacy.clip_norm > 0"),
    ],
)
def test_a_weak_or_incoherent_dp_policy_is_refused(policy: Privacy, sentence: str) -> None:
    """DP on needs a clip and a noise multiplier; delta is a probability."""
    with pytest.raises(InvalidGenesis, match=sentence):
        validate_genesis(_genesis(policy), VERIFIER)


@pytest.mark.parametrize("rule", ["median", "trimmed-mean", "multi-krum"])
def test_secure_aggregation_refuses_rules_that_read_one_update(rule: str) -> None:
    """A rule that needs individual updates cannot run on masked ones."""
    genesis = _genesis(Privacy(secure_aggregation=True), rule=rule)
    with pytest.raises(InvalidGenesis, match=f"rule '{rule}' cannot be used; use fedavg"):
        validate_genesis(genesis, VERIFIER)


def test_secure_aggregation_refuses_clipping_at_the_proposer() -> None:
    """The proposer cannot clip what it cannot read: clipping moves to the source."""
    genesis = _genesis(Privacy(secure_aggregation=True), clip_norm=1.0)
    with pytest.raises(InvalidGenesis, match="clip at the source"):
        validate_genesis(genesis, VERIFIER)


def test_secure_aggregation_with_fedavg_validates() -> None:
    """fedavg with the secure-aggregation defaults is a valid genesis."""
    validate_genesis(_genesis(Privacy(secure_aggregation=True)), VERIFIER)
    too_many = dataclasses.replace(Privacy(secure_aggregation=True), secagg_neighbours=9)
    with pytest.raises(InvalidGenesis, match="secagg_neighbours"):
        validate_genesis(_genesis(too_many), VERIFIER)


def test_secure_aggregation_needs_every_trainers_agreement_key() -> None:
    """Masks come from keys on chain: a trainer without one, or two sharing one, is refused."""
    keys = [bytes([i + 1]) * 32 for i in range(4)]
    secure = Privacy(secure_aggregation=True)
    make = lambda ks: make_genesis("c", SIGNERS, privacy=secure, agreement_keys=ks)  # noqa: E731
    validate_genesis(make(keys), VERIFIER)
    with pytest.raises(InvalidGenesis, match="every trainer's agreement key"):
        validate_genesis(make([*keys[:3], b""]), VERIFIER)
    with pytest.raises(InvalidGenesis, match="share one agreement key"):
        validate_genesis(make([*keys[:3], keys[0]]), VERIFIER)
    with pytest.raises(InvalidGenesis, match="not 32 bytes"):
        validate_genesis(make([*keys[:3], b"short"]), VERIFIER)
