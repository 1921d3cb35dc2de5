"""A signed proposal of an objectively invalid block is evidence (issue 10, attack 8)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from consensus_harness import Cluster, make_cluster, of_type

import consensus.tendermint
from consensus.codec import encode, genesis_hash, ledger_root
from consensus.events import ProposalReceived, ReportEvidence, Started
from consensus.invalid_proposal import MAX_EVIDENCE_BLOCK_BYTES
from consensus.ledger import SLASH_EVIDENCE, apply_block, genesis_ledger
from consensus.types import INVALID_PROPOSAL_OFFENCE, Block, InvalidProposalEvidence
from consensus.validity import BlockChecker, Parent


def _reported(cluster: Cluster, block: Block) -> list[ReportEvidence]:
    core = cluster.core(0)
    core.handle(Started(), 0.0)
    return of_type(core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0), ReportEvidence)


def _swapped(cluster: Cluster) -> Block:
    """Height 1's round-0 proposer (member 1) declares "median" where the genesis says fedavg."""
    return replace(cluster.carry_over(0), rule="median")


def test_a_rule_swapping_proposal_is_evidence() -> None:
    cluster = make_cluster(4)
    reports = _reported(cluster, _swapped(cluster))
    assert len(reports) == 1
    evidence = reports[0].evidence
    assert isinstance(evidence, InvalidProposalEvidence)
    assert evidence.offence == (1, 1, 0, INVALID_PROPOSAL_OFFENCE)
    assert evidence.block == encode(_swapped(cluster))


def test_an_honest_proposal_is_not_evidence() -> None:
    cluster = make_cluster(4)
    assert _reported(cluster, cluster.carry_over(0)) == []


def test_without_the_check_an_invalid_proposal_costs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attack as main had it: the proposal is refused (nil prevote), nothing recorded."""
    monkeypatch.setattr(consensus.tendermint, "invalid_proposal_evidence", lambda *a: None)
    cluster = make_cluster(4)
    assert _reported(cluster, _swapped(cluster)) == []


def _judge(cluster: Cluster, evidence: InvalidProposalEvidence) -> str | None:
    ledger = genesis_ledger(cluster.genesis)
    parent = Parent(0, genesis_hash(cluster.genesis), cluster.genesis.genesis_time_ms, ledger)
    block = replace(cluster.carry_over(1), invalid_proposals=(evidence,))
    block = replace(
        block, header=replace(block.header, ledger_root=ledger_root(apply_block(ledger, block)))
    )
    checker = BlockChecker(cluster.genesis, cluster.genesis_set(), cluster.verifier)
    return checker.block_problem(block, parent)


def test_a_block_with_the_evidence_is_valid_and_slashes_the_proposer() -> None:
    cluster = make_cluster(4)
    evidence = _reported(cluster, _swapped(cluster))[0].evidence
    assert isinstance(evidence, InvalidProposalEvidence)
    assert _judge(cluster, evidence) is None
    carrier = replace(cluster.carry_over(1), invalid_proposals=(evidence,))
    after = apply_block(genesis_ledger(cluster.genesis), carrier)
    assert after.participants[1].reputation == -SLASH_EVIDENCE


def test_forged_invalid_proposal_evidence_is_refused() -> None:
    """An honest block framed as invalid, a tampered block, an oversized or undecodable one."""
    cluster = make_cluster(4)
    evidence = _reported(cluster, _swapped(cluster))[0].evidence
    assert isinstance(evidence, InvalidProposalEvidence)
    honest = cluster.proposal(cluster.carry_over(0), 0)
    framed = replace(evidence, block=encode(honest.block), signature=honest.signature)
    assert _judge(cluster, framed) == (
        "invalid-proposal evidence for a block that breaks no objective rule"
    )
    tampered = replace(evidence, block=encode(replace(_swapped(cluster), rule="trimmed-mean")))
    assert _judge(cluster, tampered) == "evidence proposal signature does not verify"
    huge = replace(evidence, block=bytes(MAX_EVIDENCE_BLOCK_BYTES + 1))
    assert _judge(cluster, huge) == "invalid-proposal evidence with an oversized block"
    junk = replace(evidence, block=b"\xa0")
    problem = _judge(cluster, junk)
    assert problem is not None and "does not decode" in problem
