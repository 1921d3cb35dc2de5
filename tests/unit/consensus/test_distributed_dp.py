"""Distributed DP: under secure aggregation each site adds 1/m of the noise variance, and a
model block must sum at least m shares (issue 11, docs/THREAT-MODEL.md "Distributed DP")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest
from consensus_harness import TIMEOUTS, Cluster, fake_signers
from test_dp_budget import ACCOUNTANT, DELTA, NOISE, DpNet

from consensus.core import ConsensusCore
from consensus.crypto import FakeVerifier
from consensus.genesis import InvalidGenesis, make_genesis, validate_genesis
from consensus.privacy import PrivacyRules
from consensus.shell import Train
from consensus.types import Privacy, ValidatorIndex
from learning import privatize_update
from learning.serialize import bytes_to_weights, weights_to_bytes


def _policy(shares: int, secure: bool = True) -> Privacy:
    return Privacy(
        clip_norm=1.0,
        noise_multiplier=NOISE,
        delta=DELTA,
        epsilon_budget=100.0,
        secure_aggregation=secure,
        dp_noise_shares=shares,
    )


def _cluster(policy: Privacy, n: int = 4) -> Cluster:
    signers = fake_signers(n)
    genesis = make_genesis(
        "ddp",
        signers,
        timeouts=TIMEOUTS,
        initial_model_hash=hashlib.sha256(b"model-0").digest(),
        privacy=policy,
    )
    return Cluster(genesis, signers, FakeVerifier.for_signers(signers))


def test_split_noise_needs_secure_aggregation_and_enough_trainers() -> None:
    """Without secure aggregation a site's reduced share would be visible on its own."""
    for policy, sentence in (
        (_policy(4, secure=False), "needs privacy.clip_norm > 0 and privacy.secure"),
        (_policy(5), "up to the 4 trainers"),
    ):
        with pytest.raises(InvalidGenesis, match=sentence):
            cluster = _cluster(policy)
            validate_genesis(cluster.genesis, cluster.verifier)
    cluster = _cluster(_policy(4))
    assert validate_genesis(cluster.genesis, cluster.verifier) is not None


def test_m_shares_sum_to_the_accounted_noise() -> None:
    """Each site's share has standard deviation z C / sqrt(m); the sum of m has z C."""
    m, size = 4, 20_000
    zero = weights_to_bytes({"w": np.zeros(size, dtype=np.float32)})
    share = _policy(m).site_noise_multiplier
    assert share == pytest.approx(NOISE / 2)
    shares = [bytes_to_weights(privatize_update(zero, 1.0, share))["w"] for _ in range(m)]
    assert float(np.std(shares[0])) == pytest.approx(NOISE / 2, rel=0.03)
    assert float(np.std(np.sum(shares, axis=0))) == pytest.approx(NOISE, rel=0.03)
    assert abs(float(np.corrcoef(shares[0], shares[1])[0, 1])) < 0.05  # independent shares


@dataclass
class ThreeTrainers(DpNet):
    """Member 3 never trains: each height has three updates."""

    def _perform(self, node: int, request: object) -> None:
        if node == 3 and isinstance(request, Train):
            return
        super()._perform(node, request)


def _blocks(shares: int) -> list:  # type: ignore[type-arg]
    cluster = _cluster(_policy(shares))
    cores = [
        ConsensusCore(
            cluster.genesis,
            verifier=cluster.verifier,
            me=ValidatorIndex(i),
            signer=cluster.signers[i],
            accountant=ACCOUNTANT,
        )
        for i in range(4)
    ]
    net = ThreeTrainers(cluster, cores, max_height=2)
    net.start()
    net.run()
    while len(net.commits[0]) < 2 and net.fire_timeouts():
        net.run()
    return [c.block for c in net.commits[0]]


def test_a_height_with_fewer_shares_than_m_is_a_carry_over() -> None:
    """m = 4 but only 3 sites trained: the sum would carry 3/4 of the noise variance."""
    blocks = _blocks(4)
    assert blocks and all(b.is_carry_over for b in blocks)
    assert all(b.carry_over_reason.startswith("dp-noise-shares") for b in blocks)


def test_without_the_rule_three_shares_make_a_model_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack on the guarantee: with the check off, 3 of 4 shares are certified."""
    monkeypatch.setattr(PrivacyRules, "noise_shares_problem", lambda self, included: None)
    blocks = _blocks(4)
    assert blocks and not blocks[0].is_carry_over and len(blocks[0].receipts) == 3


def test_three_shares_suffice_when_m_is_three() -> None:
    blocks = _blocks(3)
    assert blocks and not blocks[0].is_carry_over and len(blocks[0].receipts) == 3
