"""The ledger as a pure state transition per committed block."""

from __future__ import annotations

from dataclasses import replace

from consensus_harness import make_cluster

from consensus.codec import ledger_root
from consensus.ledger import (
    CREDIT_ACCEPTED,
    DEBIT_REJECTED,
    SLASH_EVIDENCE,
    apply_block,
    genesis_ledger,
)
from consensus.types import (
    DuplicateVoteEvidence,
    Hash,
    Height,
    ImprovementCertificate,
    Round,
    Signature,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
    VoteType,
)


def receipt(author: int, n: int, eps: float) -> UpdateReceipt:
    return UpdateReceipt(
        ValidatorIndex(author), Height(1), Hash(bytes(32)), Hash(bytes([author]) * 32), n, 0.3, eps
    )


def model_block(cluster, accepted, rejected, reasons=None):  # type: ignore[no-untyped-def]
    block = cluster.carry_over(0)
    cert = ImprovementCertificate(Hash(bytes(32)), b"\x0f", Signature(bytes(96)))
    return replace(
        block,
        receipts=tuple(accepted),
        rejected=tuple(rejected),
        rejection_reasons=tuple(reasons if reasons is not None else ["outlier"] * len(rejected)),
        improvement_certificate=cert,
        carry_over_reason="",
        header=replace(block.header, model_hash=Hash(b"\x09" * 32)),
    )


def test_accepted_and_rejected_updates() -> None:
    """Accepted updates credit samples and reputation, rejected ones debit; both spend DP."""
    cluster = make_cluster(4)
    before = genesis_ledger(cluster.genesis)
    after = apply_block(
        before, model_block(cluster, [receipt(0, 120, 0.5)], [receipt(1, 80, 0.25)])
    )
    assert after.height == 1 and after.model_hash == b"\x09" * 32
    a, b = after.participants[0], after.participants[1]
    assert (a.accepted_updates, a.samples_contributed, a.reputation) == (1, 120, CREDIT_ACCEPTED)
    assert (b.rejected_updates, b.samples_contributed, b.reputation) == (1, 0, -DEBIT_REJECTED)
    assert (a.epsilon_spent, b.epsilon_spent) == (0.5, 0.25)
    assert after.participants[2] == before.participants[2]
    assert before.participants[0].accepted_updates == 0  # pure: the input is unchanged


def test_an_unavailable_update_debits_nothing() -> None:
    """A rejection for "unavailable" (the proposer could not fetch it) spends the trainer's DP
    but costs it no reputation; an "outlier" rejection in the same block does."""
    cluster = make_cluster(4)
    block = model_block(
        cluster,
        [receipt(0, 120, 0.5)],
        [receipt(1, 80, 0.25), receipt(2, 80, 0.25)],
        ["unavailable", "outlier"],
    )
    after = apply_block(genesis_ledger(cluster.genesis), block)
    unavailable, outlier = after.participants[1], after.participants[2]
    assert (unavailable.rejected_updates, unavailable.reputation) == (0, 0)
    assert unavailable.epsilon_spent == 0.25
    assert (outlier.rejected_updates, outlier.reputation) == (1, -DEBIT_REJECTED)


def test_carry_over_keeps_model_and_counts() -> None:
    """A carry-over block changes nothing but the height."""
    cluster = make_cluster(4)
    before = genesis_ledger(cluster.genesis)
    after = apply_block(before, cluster.carry_over(0))
    assert after.model_hash == before.model_hash
    assert after.participants == before.participants and after.height == 1


def test_evidence_slashes_once() -> None:
    """The same offence in two blocks is slashed once."""
    cluster = make_cluster(4)
    a = Vote(VoteType.PREVOTE, Height(1), Round(0), None, ValidatorIndex(2))
    b = replace(a, block_hash=Hash(b"\x01" * 32))
    block = replace(cluster.carry_over(0), evidence=(DuplicateVoteEvidence(a, b),))
    once = apply_block(genesis_ledger(cluster.genesis), block)
    twice = apply_block(once, block)
    assert once.participants[2].slashed == 1
    assert once.participants[2].reputation == -SLASH_EVIDENCE
    assert twice.participants[2] == once.participants[2]
    assert once.punished == ((2, 1, 0, 1),)


def test_root_is_deterministic_and_sensitive() -> None:
    """Equal ledgers have equal roots; any change changes the root."""
    cluster = make_cluster(4)
    l1 = apply_block(genesis_ledger(cluster.genesis), cluster.carry_over(0))
    l2 = apply_block(genesis_ledger(cluster.genesis), cluster.carry_over(0))
    assert ledger_root(l1) == ledger_root(l2)
    l3 = replace(
        l1, participants=(replace(l1.participants[0], epsilon_spent=1e-12), *l1.participants[1:])
    )
    assert ledger_root(l3) != ledger_root(l1)


def _heights_after_evidence(consequence: str) -> list:  # type: ignore[type-arg]
    """The member sets of heights 2-4 after block 1 carries member 2's double prevote."""
    from consensus.governance import next_members

    cluster = make_cluster(4)
    a = Vote(VoteType.PREVOTE, Height(1), Round(0), None, ValidatorIndex(2))
    b = replace(a, block_hash=Hash(b"\x01" * 32))
    ledger = apply_block(
        genesis_ledger(cluster.genesis),
        replace(cluster.carry_over(0), evidence=(DuplicateVoteEvidence(a, b),)),
        consequence,
    )
    sets = []
    for height in (2, 3, 4):
        sets.append(next_members(ledger))
        block = cluster.carry_over(0, height=height, ledger=ledger)
        ledger = apply_block(ledger, block, consequence)
    return sets


def test_without_a_consequence_an_equivocator_keeps_its_power() -> None:
    """The attack of docs/THREAT-MODEL.md "Evidence that costs nothing": slashing only lowers a
    reputation, and the double signer still votes and trains with its full power."""
    for members in _heights_after_evidence("slash"):
        assert members[2].power == 1 and members[2].roles


def test_evidence_removes_the_equivocator_two_heights_later() -> None:
    """With the genesis consequence "remove", the evidence committed at height 1 schedules the
    offender's removal through governance: from height 3 it has no power and no roles (so no
    vote and no training weight); height 2 still has it, as for any governance change."""
    sets = _heights_after_evidence("remove")
    assert sets[0][2].power == 1
    assert [(m[2].power, m[2].roles) for m in sets[1:]] == [(0, ()), (0, ())]
    assert all(m[i].power == 1 for m in sets for i in (0, 1, 3))
