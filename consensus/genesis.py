"""Building and checking a genesis (docs/ARCHITECTURE.md "Blocks, certificates and the ledger": Genesis).

`validate_genesis` is what every node runs on the genesis file before trusting it: every key
well formed and not the identity, every proof of possession valid (rogue-key attack), powers and
roles consistent. `make_genesis` is the convenience used by tests, simulations and `bcfl genesis`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from consensus.crypto import Signer, Verifier
from consensus.policies import EVIDENCE_CONSEQUENCES
from consensus.types import (
    HASH_SIZE,
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    ROLES,
    Genesis,
    Hash,
    Privacy,
    Safeguards,
    Timeouts,
    ValidatorInfo,
    VerdictRule,
)
from consensus.validators import ValidatorSet


class InvalidGenesis(Exception):
    """The genesis is unusable; the message says what to fix."""


def make_genesis(
    chain_id: str,
    signers: Sequence[Signer],
    *,
    powers: Sequence[int] | None = None,
    roles: Sequence[Sequence[str]] | None = None,
    peer_ids: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    task: dict[str, Any] | None = None,
    aggregation_rule: str = "fedavg",
    aggregation_params: dict[str, Any] | None = None,
    verdict_rule: VerdictRule | None = None,
    timeouts: Timeouts | None = None,
    initial_model_hash: bytes = bytes(HASH_SIZE),
    expected_trainers: int | None = None,
    genesis_time_ms: int = 0,
    safeguards: Safeguards | None = None,
    privacy: Privacy | None = None,
    agreement_keys: Sequence[bytes] | None = None,
) -> Genesis:
    """A genesis where member i is `signers[i]` (default: power 1, validator + trainer).

    `agreement_keys` are the members' X25519 keys; under secure aggregation without them each
    member gets a distinct placeholder (enough for genesis checks, not to run the protocol)."""
    n = len(signers)
    if agreement_keys is None and privacy is not None and privacy.secure_aggregation:
        agreement_keys = [
            hashlib.sha256(b"bcfl-test-agreement" + s.public_key).digest() for s in signers
        ]
    role_sets = [tuple(sorted(r)) for r in roles] if roles else [(ROLE_TRAINER, ROLE_VALIDATOR)] * n
    member_powers = list(powers) if powers else [1 if ROLE_VALIDATOR in r else 0 for r in role_sets]
    members = tuple(
        ValidatorInfo(
            name=names[i] if names else f"member-{i}",
            public_key=s.public_key,
            proof_of_possession=s.prove_possession(),
            peer_id=peer_ids[i] if peer_ids else f"peer-{i}",
            power=member_powers[i],
            roles=role_sets[i],
            agreement_key=bytes(agreement_keys[i]) if agreement_keys else b"",
        )
        for i, s in enumerate(signers)
    )
    n_trainers = sum(1 for m in members if ROLE_TRAINER in m.roles)
    return Genesis(
        chain_id=chain_id,
        validators=members,
        task=dict(task or {"name": "test"}),
        aggregation_rule=aggregation_rule,
        aggregation_params=dict(aggregation_params or {}),
        verdict_rule=verdict_rule or VerdictRule(metric="loss", noise_margin=0.0),
        timeouts=timeouts or Timeouts(),
        initial_model_hash=Hash(bytes(initial_model_hash)),
        expected_trainers=n_trainers if expected_trainers is None else expected_trainers,
        genesis_time_ms=genesis_time_ms,
        safeguards=safeguards or Safeguards(),
        privacy=privacy or Privacy(),
    )


def validate_genesis(genesis: Genesis, verifier: Verifier) -> ValidatorSet:
    """Check the genesis and return its validator set, or raise InvalidGenesis."""
    if not genesis.chain_id:
        raise InvalidGenesis("the genesis has an empty chain_id")
    if len(genesis.initial_model_hash) != HASH_SIZE:
        raise InvalidGenesis("initial_model_hash must be a 32-byte SHA-256")
    seen_keys: set[bytes] = set()
    for i, member in enumerate(genesis.validators):
        where = f"member {i} ({member.name!r})"
        if not set(member.roles) <= ROLES or list(member.roles) != sorted(set(member.roles)):
            raise InvalidGenesis(
                f"{where} has roles {member.roles}; use a sorted subset of {sorted(ROLES)}"
            )
        if member.power < 0:
            raise InvalidGenesis(f"{where} has negative voting power")
        if (ROLE_VALIDATOR in member.roles) != (member.power > 0):
            raise InvalidGenesis(
                f"{where}: a validator needs power > 0 and only validators have power"
            )
        if not verifier.valid_public_key(member.public_key):
            raise InvalidGenesis(f"{where} has a malformed or identity public key")
        if not verifier.verify_possession(member.public_key, member.proof_of_possession):
            raise InvalidGenesis(f"{where} has an invalid proof of possession")
        if bytes(member.public_key) in seen_keys:
            raise InvalidGenesis(f"{where} reuses another member's public key")
        seen_keys.add(bytes(member.public_key))
        if len(member.agreement_key) not in (0, 32):
            raise InvalidGenesis(f"{where} has an agreement key that is not 32 bytes")
    try:
        valset = ValidatorSet(genesis.validators)
    except ValueError as exc:
        raise InvalidGenesis(str(exc)) from exc
    if genesis.expected_trainers < 0 or genesis.expected_trainers > len(valset.trainers):
        raise InvalidGenesis("expected_trainers must be between 0 and the number of trainers")
    t = genesis.timeouts
    if min(t.propose, t.prevote, t.precommit, t.update_window, t.attestation) <= 0:
        raise InvalidGenesis("every timeout must be positive")
    g = genesis.safeguards
    if g.max_samples_per_update < 1:
        raise InvalidGenesis("safeguards.max_samples_per_update must be at least 1")
    if g.timestamp_precision_ms < 0 or g.message_delay_ms < 0:
        raise InvalidGenesis("safeguards timestamp bounds must not be negative")
    if not 0.0 <= g.max_regression < float("inf"):
        raise InvalidGenesis("safeguards.max_regression must be a finite number >= 0")
    if g.evidence_consequence not in EVIDENCE_CONSEQUENCES:
        raise InvalidGenesis(
            f"safeguards.evidence_consequence is {g.evidence_consequence!r}; use one of "
            f"{', '.join(EVIDENCE_CONSEQUENCES)}"
        )
    check_privacy(genesis, len(valset.trainers))
    return valset


SECAGG_REFUSED_RULES = frozenset({"median", "trimmed-mean", "multi-krum"})
"""Rules that read individual updates, which secure aggregation hides."""


def check_privacy(genesis: Genesis, n_trainers: int) -> None:
    """Check the genesis privacy policy (consensus.types.Privacy), or raise InvalidGenesis."""
    p = genesis.privacy
    if not 0.0 < p.delta < 1.0:
        raise InvalidGenesis(f"privacy.delta must be in (0, 1), got {p.delta}")
    if p.clip_norm < 0 or p.noise_multiplier < 0 or p.epsilon_budget < 0:
        raise InvalidGenesis("privacy.clip_norm, noise_multiplier and epsilon_budget must be >= 0")
    if p.dp_enabled and not p.noise_multiplier > 0:
        raise InvalidGenesis(
            "privacy.clip_norm turns differential privacy on, so privacy.noise_multiplier must be"
            " positive"
        )
    if not p.dp_enabled and (p.noise_multiplier > 0 or p.epsilon_budget > 0):
        raise InvalidGenesis(
            "privacy.noise_multiplier and privacy.epsilon_budget need privacy.clip_norm > 0"
            " (noise without clipping bounds nothing)"
        )
    if p.dp_noise_shares < 0 or p.dp_noise_shares > n_trainers:
        raise InvalidGenesis(
            f"privacy.dp_noise_shares is {p.dp_noise_shares}; use 0 (full noise at each site) up"
            f" to the {n_trainers} trainers"
        )
    if p.dp_noise_shares and not (p.dp_enabled and p.secure_aggregation):
        raise InvalidGenesis(
            "privacy.dp_noise_shares splits the DP noise between sites, which is private only"
            " when nobody sees one update: it needs privacy.clip_norm > 0 and"
            " privacy.secure_aggregation"
        )
    if not p.secure_aggregation:
        return
    if genesis.aggregation_rule in SECAGG_REFUSED_RULES:
        raise InvalidGenesis(
            "secure aggregation hides individual updates, so rule"
            f" {genesis.aggregation_rule!r} cannot be used; use fedavg"
        )
    if genesis.aggregation_params.get("clip_norm") is not None:
        raise InvalidGenesis(
            "secure aggregation hides individual updates, so the proposer cannot clip them"
            " (aggregation_params.clip_norm); clip at the source with privacy.clip_norm"
        )
    keys = [m.agreement_key for m in genesis.validators if ROLE_TRAINER in m.roles]
    if not all(keys):
        raise InvalidGenesis(
            "secure aggregation needs every trainer's agreement key; make the genesis from"
            " node_info.json files written by this version's `bcfl init`"
        )
    if len(set(keys)) != len(keys):
        raise InvalidGenesis("two trainers share one agreement key")
    if p.secagg_neighbours > max(0, n_trainers - 1):
        raise InvalidGenesis(
            f"privacy.secagg_neighbours is {p.secagg_neighbours} but there are only"
            f" {n_trainers} trainers; use at most {max(0, n_trainers - 1)} (0 pairs all)"
        )
    neighbours = p.secagg_neighbours or max(0, n_trainers - 1)
    if p.secagg_threshold > neighbours:
        raise InvalidGenesis(
            f"privacy.secagg_threshold {p.secagg_threshold} exceeds the {neighbours} neighbours"
            " that hold a trainer's mask shares"
        )
    if not p.secagg_clip_range > 0:
        raise InvalidGenesis("privacy.secagg_clip_range must be positive")
    if p.secagg_quant_range * max(1, n_trainers) >= 2**p.secagg_modulus_bits:
        raise InvalidGenesis(
            "privacy.secagg_quant_range times the number of trainers must stay below"
            " 2^secagg_modulus_bits, or the masked sum wraps"
        )
