"""The insider attacks of docs/THREAT-MODEL.md against one core: each defence on, then off.

Each test shows the attack failing; where a defence is a single check, a second test disables
that check and shows the same attack succeeding, so the check is what stops it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from consensus_harness import make_cluster, of_type

from consensus import bounds, codec
from consensus.codec import InvalidMessage, block_hash
from consensus.events import ProposalReceived, Rejected, Started
from consensus.tendermint import Tendermint
from consensus.types import Vote, VoteType


def _prevotes(actions):  # type: ignore[no-untyped-def]
    return [
        a.message.block_hash
        for a in actions
        if hasattr(a, "message")
        and isinstance(a.message, Vote)
        and a.message.vote_type == VoteType.PREVOTE
    ]


def _core():  # type: ignore[no-untyped-def]
    cluster = make_cluster(4)
    core = cluster.core(0)
    core.handle(Started(), 0.0)
    return cluster, core


# -- 1. halt by timestamp ----------------------------------------------------------------------


def test_a_far_future_block_time_gets_a_nil_prevote() -> None:
    """A proposal stamped at the largest encodable time is untimely: nil prevote, counted."""
    cluster, core = _core()
    block = cluster.carry_over(0, time_ms=bounds.MAX_TIME_MS)
    actions = core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    assert _prevotes(actions) == [None]
    assert [r.reason for r in of_type(actions, Rejected)] == ["untimely-proposal"]


def test_a_block_time_far_behind_the_clock_gets_a_nil_prevote() -> None:
    """A stale stamp (older than message delay + precision) is untimely too."""
    cluster, core = _core()
    block = cluster.carry_over(0, time_ms=1)
    late = 1 + (cluster.genesis.safeguards.message_delay_ms + 5_000) / 1000
    actions = core.handle(ProposalReceived(cluster.proposal(block, 0)), late)
    assert _prevotes(actions) == [None]


def test_a_timely_block_time_gets_a_prevote() -> None:
    """Within the precision of our clock: prevote for the block."""
    cluster, core = _core()
    block = cluster.carry_over(0, time_ms=2_500)
    actions = core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    assert _prevotes(actions) == [block_hash(block)]


def test_without_the_timeliness_check_a_far_future_stamp_halts_the_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Check disabled: the far-future block is prevoted, and no child of it can be encoded."""
    monkeypatch.setattr(Tendermint, "_timely", lambda self, round_, out: True)
    cluster, core = _core()
    block = cluster.carry_over(0, time_ms=bounds.MAX_TIME_MS)
    actions = core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    assert _prevotes(actions) == [block_hash(block)]
    child = replace(block.header, height=2, time_ms=block.header.time_ms + 1)
    with pytest.raises(InvalidMessage, match="out of range"):
        codec.decode(codec.encode(child))


# -- 2. hijack by sample count (the aggregation half is in tests/unit/learning) ----------------


def _receipt(cluster, n_samples: int):  # type: ignore[no-untyped-def]
    from consensus.signing import receipt_bytes
    from consensus.types import Hash, Height, UpdateReceipt, ValidatorIndex

    r = UpdateReceipt(
        ValidatorIndex(1),
        Height(1),
        cluster.genesis.initial_model_hash,
        Hash(bytes(32)),
        n_samples,
        0.5,
        0.0,
    )
    return replace(r, signature=cluster.signers[1].sign(receipt_bytes("test-chain", r)))


def test_a_receipt_claiming_more_samples_than_the_cap_is_refused() -> None:
    """Admission and valid(v) refuse a sample count above the genesis cap, with a reason."""
    from consensus.admission import Admission
    from consensus.validity import BlockChecker

    cluster = make_cluster(4)
    cap = cluster.genesis.safeguards.max_samples_per_update
    admission = Admission.for_genesis(cluster.genesis, cluster.verifier)
    checker = BlockChecker(cluster.genesis, cluster.genesis_set(), cluster.verifier)
    base = cluster.genesis.initial_model_hash
    assert admission.receipt(_receipt(cluster, cap)) is None
    assert admission.receipt(_receipt(cluster, 10**9)) == "samples-over-cap"
    assert checker.receipts_problem([_receipt(cluster, cap)], 1, base) is None
    problem = checker.receipts_problem([_receipt(cluster, 10**9)], 1, base)
    assert problem is not None and "cap" in problem


# -- 6. rule swap ------------------------------------------------------------------------------


def _resigned(cluster, report):  # type: ignore[no-untyped-def]
    from consensus.signing import report_bytes

    key = cluster.signers[report.evaluator]
    return replace(report, signature=key.sign(report_bytes("test-chain", report)))


def _committed_model_block():  # type: ignore[no-untyped-def]
    from consensus_harness import InstantNet

    from consensus.codec import genesis_hash
    from consensus.ledger import genesis_ledger
    from consensus.validity import BlockChecker, Parent

    cluster = make_cluster(4)
    net = InstantNet(cluster, [cluster.core(i) for i in range(4)], max_height=1)
    net.start()
    block = net.commits[0][0].block
    ledger = genesis_ledger(cluster.genesis)
    parent = Parent(0, genesis_hash(cluster.genesis), cluster.genesis.genesis_time_ms, ledger)
    checker = BlockChecker(cluster.genesis, cluster.genesis_set(), cluster.verifier)
    return cluster, checker, block, parent


# -- 4. unsigned numbers -----------------------------------------------------------------------


def test_eval_report_numbers_altered_by_the_proposer_make_the_block_invalid() -> None:
    """A proposer that rewrites a validator's numbers (the verdict's signature does not cover
    them) proposes an invalid block: each report is signed by its evaluator."""
    cluster, checker, block, parent = _committed_model_block()
    assert checker.block_problem(block, parent) is None
    forged = replace(block.eval_reports[0], metric_after=0.999)
    bad = replace(block, eval_reports=(forged, *block.eval_reports[1:]))
    problem = checker.block_problem(bad, parent)
    assert problem is not None and "eval report signature" in problem


def test_without_report_signatures_altered_numbers_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check disabled: the same rewritten numbers pass valid(v) and would reach the record."""
    from consensus.validity import BlockChecker

    monkeypatch.setattr(BlockChecker, "reports_problem", lambda self, reports: None)
    cluster, checker, block, parent = _committed_model_block()
    forged = replace(block.eval_reports[0], metric_after=0.999)
    bad = replace(block, eval_reports=(forged, *block.eval_reports[1:]))
    assert checker.block_problem(bad, parent) is None


def _swapped_rule_block():  # type: ignore[no-untyped-def]
    """A committed model block rebuilt to declare "median" (genesis: fedavg), certified by
    every validator as honest evaluators would (they recompute with the genesis rule)."""
    from consensus_harness import InstantNet

    from consensus.codec import candidate_id, genesis_hash, ledger_root
    from consensus.ledger import apply_block, genesis_ledger
    from consensus.signing import attestation_sign_bytes
    from consensus.validity import BlockChecker, Parent

    cluster = make_cluster(4)
    net = InstantNet(cluster, [cluster.core(i) for i in range(4)], max_height=1)
    net.start()
    block = net.commits[0][0].block
    ledger = genesis_ledger(cluster.genesis)
    parent = Parent(0, genesis_hash(cluster.genesis), cluster.genesis.genesis_time_ms, ledger)
    chash = candidate_id(
        1, ledger.model_hash, block.header.model_hash, "median", block.receipts, block.rejected
    )
    message = attestation_sign_bytes("test-chain", 1, chash, True)
    signature = cluster.verifier.aggregate([s.sign(message) for s in cluster.signers])
    cert = replace(
        block.improvement_certificate,
        candidate_hash=chash,
        signers=cluster.genesis_set().bitfield(range(4)),
        aggregate_signature=signature,
    )
    reports = tuple(
        _resigned(cluster, replace(r, candidate_hash=chash)) for r in block.eval_reports
    )
    swapped = replace(block, rule="median", improvement_certificate=cert, eval_reports=reports)
    root = ledger_root(apply_block(ledger, swapped))
    swapped = replace(swapped, header=replace(swapped.header, ledger_root=root))
    checker = BlockChecker(cluster.genesis, cluster.genesis_set(), cluster.verifier)
    assert checker.block_problem(block, parent) is None
    return checker, swapped, parent


def test_a_block_declaring_another_rule_than_the_genesis_is_invalid() -> None:
    """valid(v) refuses a block whose rule differs from the genesis aggregation rule."""
    checker, swapped, parent = _swapped_rule_block()
    problem = checker.block_problem(swapped, parent)
    assert problem is not None and "genesis rule is 'fedavg'" in problem


def test_without_the_rule_check_a_swapped_rule_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check disabled: the same block passes valid(v), and the chain records a false rule."""
    from consensus.validity import BlockChecker

    monkeypatch.setattr(BlockChecker, "rule_problem", lambda self, rule: None)
    checker, swapped, parent = _swapped_rule_block()
    assert checker.block_problem(swapped, parent) is None


def test_a_candidate_declaring_another_rule_is_refused_at_admission() -> None:
    """The gossip edge and the core refuse such a candidate (`wrong-rule`)."""
    from consensus.admission import Admission
    from consensus.types import Candidate, Hash, Height, Round, ValidatorIndex

    cluster = make_cluster(4)
    admission = Admission.for_genesis(cluster.genesis, cluster.verifier)
    candidate = Candidate(
        Height(1),
        Round(0),
        ValidatorIndex(1),
        Hash(bytes(32)),
        Hash(bytes(32)),
        (_receipt(cluster, 10),),
        (),
        "median",
    )
    assert admission.candidate(candidate, verify=False) == "wrong-rule"
    assert admission.candidate(replace(candidate, rule="fedavg"), verify=False) is None
