"""A second, different proposal for one (height, round) is evidence (issue 10, attack 8)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from consensus_harness import Cluster, make_cluster, of_type

import consensus.tendermint
from consensus.codec import block_hash, genesis_hash, ledger_root
from consensus.events import ProposalReceived, ReportEvidence, Started
from consensus.ledger import SLASH_EVIDENCE, apply_block, genesis_ledger
from consensus.types import (
    PROPOSAL_OFFENCE,
    Block,
    DuplicateProposalEvidence,
    Proposal,
    Signature,
)
from consensus.validity import BlockChecker, Parent, proposal_evidence


def _two_proposals(cluster: Cluster) -> tuple[Proposal, Proposal]:
    """Two signed round-0 proposals of height 1's proposer (member 1): block times differ."""
    first = cluster.carry_over(0, time_ms=1000)
    second = cluster.carry_over(0, time_ms=1001)
    return cluster.proposal(first, 0), cluster.proposal(second, 0)


def _evidence_reported(cluster: Cluster) -> list[ReportEvidence]:
    core = cluster.core(0)
    core.handle(Started(), 0.0)
    a, b = _two_proposals(cluster)
    actions = core.handle(ProposalReceived(a), 1.0)
    actions += core.handle(ProposalReceived(b), 1.0)
    return of_type(actions, ReportEvidence)


def test_a_second_signed_proposal_for_one_round_is_evidence() -> None:
    cluster = make_cluster(4)
    reports = _evidence_reported(cluster)
    assert len(reports) == 1
    evidence = reports[0].evidence
    assert isinstance(evidence, DuplicateProposalEvidence)
    assert evidence.offence == (1, 1, 0, PROPOSAL_OFFENCE)
    assert bytes(evidence.first.block_hash) < bytes(evidence.second.block_hash)


def test_without_the_check_a_double_proposal_costs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attack as main had it: the second proposal is ignored and nothing is recorded."""
    monkeypatch.setattr(consensus.tendermint, "proposal_evidence", lambda *args: None)
    assert _evidence_reported(make_cluster(4)) == []


def test_the_same_proposal_twice_is_not_evidence() -> None:
    cluster = make_cluster(4)
    a, _ = _two_proposals(cluster)
    bhash = block_hash(a.block)
    assert proposal_evidence(a, bhash, a, bhash) is None


def _block_with(cluster: Cluster, evidence: DuplicateProposalEvidence, consequence: str) -> Block:
    """A valid round-1 carry-over block of height 1 that carries `evidence`."""
    ledger = genesis_ledger(cluster.genesis)
    block = replace(cluster.carry_over(1), proposal_evidence=(evidence,))
    root = ledger_root(apply_block(ledger, block, consequence))
    return replace(block, header=replace(block.header, ledger_root=root))


def _checker_and_parent(cluster: Cluster) -> tuple[BlockChecker, Parent]:
    ledger = genesis_ledger(cluster.genesis)
    parent = Parent(0, genesis_hash(cluster.genesis), cluster.genesis.genesis_time_ms, ledger)
    return BlockChecker(cluster.genesis, cluster.genesis_set(), cluster.verifier), parent


def test_a_block_with_the_evidence_is_valid_and_slashes_the_proposer() -> None:
    cluster = make_cluster(4)
    evidence = _evidence_reported(cluster)[0].evidence
    assert isinstance(evidence, DuplicateProposalEvidence)
    checker, parent = _checker_and_parent(cluster)
    block = _block_with(cluster, evidence, "slash")
    assert checker.block_problem(block, parent) is None
    after = apply_block(parent.ledger, block)
    assert after.participants[1].reputation == -SLASH_EVIDENCE
    assert evidence.offence in after.punished
    removed = apply_block(parent.ledger, block, "remove")
    assert [s.change.target for s in removed.scheduled] == [cluster.genesis.validators[1].name]


def test_forged_or_harmless_proposal_evidence_is_invalid() -> None:
    """Evidence with a signature the proposer did not make, or two equal heads, is refused."""
    cluster = make_cluster(4)
    evidence = _evidence_reported(cluster)[0].evidence
    assert isinstance(evidence, DuplicateProposalEvidence)
    checker, parent = _checker_and_parent(cluster)
    forged = replace(evidence, second=replace(evidence.second, signature=Signature(bytes(96))))
    problem = checker.block_problem(_block_with(cluster, forged, "slash"), parent)
    assert problem == "evidence proposal signature does not verify"
    same = replace(evidence, second=evidence.first)
    problem = checker.block_problem(_block_with(cluster, same, "slash"), parent)
    assert problem == "evidence proposals do not conflict or are out of order"
    framed = replace(evidence, proposer=2)
    problem = checker.block_problem(_block_with(cluster, framed, "slash"), parent)
    assert problem == "evidence proposal signature does not verify"
