"""Algorithm 1 rule by rule: feed events to one core, assert its actions and state.

Four validators of power 1; the core under test is member 0, which does not propose in rounds
0-2 of height 1 (proposers are 1, 2, 3, 0 for rounds 0, 1, 2, 3).
"""

from __future__ import annotations

import dataclasses

from consensus_harness import TIMEOUTS, Cluster, broadcasts, make_cluster, of_type

from consensus.codec import block_hash
from consensus.events import (
    Broadcast,
    Commit,
    PersistSignerState,
    ProposalReceived,
    Rejected,
    ScheduleTimeout,
    Started,
    TimeoutFired,
    VoteReceived,
)
from consensus.guard import SignerState
from consensus.types import Hash, Height, Proposal, Round, Step, Vote, VoteType

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def started(cluster: Cluster, me: int = 0):  # type: ignore[no-untyped-def]
    core = cluster.core(me)
    core.handle(Started(), 0.0)
    return core


def my_votes(actions, vote_type):  # type: ignore[no-untyped-def]
    return [v for v in broadcasts(actions, Vote) if v.vote_type == vote_type]


def feed_votes(core, cluster, members, vote_type, round_, value, height=1):  # type: ignore[no-untyped-def]
    actions = []
    for i in members:
        actions += core.handle(VoteReceived(cluster.vote(i, vote_type, height, round_, value)), 1.0)
    return actions


def test_proposer_sequence_is_round_robin() -> None:
    """The fixture's assumption: proposers of height 1 rounds 0..3 are 1, 2, 3, 0."""
    cluster = make_cluster(4)
    core = cluster.core(0)
    assert [core.validator_set.proposer_for(Height(1), Round(r)) for r in range(4)] == [1, 2, 3, 0]


def test_prevote_for_a_valid_proposal() -> None:
    """Line 22-27: a valid proposal with vr = -1 in step propose gets a prevote for id(v)."""
    cluster = make_cluster(4)
    core = started(cluster)
    block = cluster.carry_over(0)
    actions = core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [block_hash(block)]
    assert core.step == Step.PREVOTE


def test_prevote_nil_for_an_invalid_proposal() -> None:
    """Line 26: an invalid block (carry-over that changes the model) gets a nil prevote."""
    cluster = make_cluster(4)
    core = started(cluster)
    bad = cluster.carry_over(0)
    from dataclasses import replace

    bad = replace(bad, header=replace(bad.header, model_hash=b"\x01" * 32))
    actions = core.handle(ProposalReceived(cluster.proposal(bad, 0)), 1.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [None]
    assert [r.reason for r in of_type(actions, Rejected)] == ["invalid-block"]


def test_persist_signer_state_precedes_the_broadcast() -> None:
    """The guard state is persisted before the signature leaves the process."""
    cluster = make_cluster(4)
    core = started(cluster)
    actions = core.handle(ProposalReceived(cluster.proposal(cluster.carry_over(0), 0)), 1.0)
    kinds = [type(a) for a in actions if isinstance(a, PersistSignerState | Broadcast)]
    assert kinds == [PersistSignerState, Broadcast]
    assert core.signer_state.step == Step.PREVOTE


def test_timeout_propose_prevotes_nil() -> None:
    """Line 57-60: timeoutPropose in step propose prevotes nil."""
    cluster = make_cluster(4)
    core = started(cluster)
    actions = core.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE), 20.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [None]
    assert core.step == Step.PREVOTE


def test_stale_timeout_is_ignored() -> None:
    """Line 58: a timeout for an earlier round (or step) does nothing."""
    cluster = make_cluster(4)
    core = started(cluster)
    feed_votes(core, cluster, [1, 2], PV, 1, None)  # f+1 at round 1: skip to round 1
    assert core.round == 1
    assert core.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE), 30.0) == []
    assert core.handle(TimeoutFired(Height(1), Round(1), Step.PREVOTE), 30.0) == []
    assert core.step == Step.PROPOSE


def test_lock_on_polka() -> None:
    """Line 36-43: proposal + 2f+1 prevotes for it in step prevote: lock and precommit."""
    cluster = make_cluster(4)
    core = started(cluster)
    block = cluster.carry_over(0)
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    actions = feed_votes(core, cluster, [1, 2], PV, 0, block_hash(block))
    assert [v.block_hash for v in my_votes(actions, PC)] == [block_hash(block)]
    assert core.locked_round == 0 and core.locked_value == block
    assert core.valid_round == 0 and core.valid_value == block
    assert core.step == Step.PRECOMMIT


def test_two_prevotes_of_four_are_not_a_polka() -> None:
    """2 of 4 equal votes is not more than 2/3: no lock."""
    cluster = make_cluster(4)
    core = started(cluster)
    block = cluster.carry_over(0)
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    feed_votes(core, cluster, [1], PV, 0, block_hash(block))
    assert core.locked_round == -1 and core.step == Step.PREVOTE


def lock_in_round_0(cluster: Cluster):  # type: ignore[no-untyped-def]
    core = started(cluster)
    block = cluster.carry_over(0, "first")
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    feed_votes(core, cluster, [1, 2], PV, 0, block_hash(block))
    assert core.locked_round == 0
    feed_votes(core, cluster, [1, 2], PC, 0, None)  # 2f+1 precommits of any value
    core.handle(TimeoutFired(Height(1), Round(0), Step.PRECOMMIT), 5.0)
    assert core.round == 1
    return core, block


def test_locked_node_prevotes_nil_for_another_value() -> None:
    """Line 23: locked on v, a fresh proposal of v' (vr = -1) gets a nil prevote."""
    cluster = make_cluster(4)
    core, _ = lock_in_round_0(cluster)
    other = cluster.carry_over(1, "second")
    actions = core.handle(ProposalReceived(cluster.proposal(other, 1)), 6.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [None]


def test_locked_node_prevotes_its_locked_value() -> None:
    """Line 23: locked on v, a re-proposal of v (with vr = 0) gets a prevote for v."""
    cluster = make_cluster(4)
    core, block = lock_in_round_0(cluster)
    actions = core.handle(ProposalReceived(cluster.proposal(block, 1, valid_round=0)), 6.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [block_hash(block)]


def test_nil_polka_never_unlocks() -> None:
    """Line 44-46: 2f+1 nil prevotes make a nil precommit; the lock stays."""
    cluster = make_cluster(4)
    core, block = lock_in_round_0(cluster)
    core.handle(TimeoutFired(Height(1), Round(1), Step.PROPOSE), 10.0)
    actions = feed_votes(core, cluster, [1, 2], PV, 1, None)
    assert [v.block_hash for v in my_votes(actions, PC)] == [None]
    assert core.locked_round == 0 and core.locked_value == block


def test_unlock_on_a_later_polka() -> None:
    """Line 28-33: a proposal of v' with vr = 1 and 2f+1 prevotes for v' in round 1 makes a node
    locked in round 0 prevote v', and the new polka relocks it on v'."""
    cluster = make_cluster(4)
    core, _ = lock_in_round_0(cluster)
    other = cluster.carry_over(1, "second")
    core.handle(TimeoutFired(Height(1), Round(1), Step.PROPOSE), 10.0)
    feed_votes(core, cluster, [1, 2, 3], PV, 1, block_hash(other))
    feed_votes(core, cluster, [1, 2], PC, 1, None)
    core.handle(TimeoutFired(Height(1), Round(1), Step.PRECOMMIT), 12.0)
    assert core.round == 2
    actions = core.handle(ProposalReceived(cluster.proposal(other, 2, valid_round=1)), 13.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [block_hash(other)]
    feed_votes(core, cluster, [1, 2], PV, 2, block_hash(other))
    assert core.locked_round == 2 and core.locked_value == other


def test_valid_value_updated_in_precommit_step() -> None:
    """Line 36 with step precommit: validValue/validRound update, the lock does not."""
    cluster = make_cluster(4)
    core = started(cluster)
    block = cluster.carry_over(0)
    core.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE), 20.0)
    feed_votes(core, cluster, [1, 2, 3], PV, 0, block_hash(block))
    core.handle(TimeoutFired(Height(1), Round(0), Step.PREVOTE), 22.0)
    assert core.step == Step.PRECOMMIT and core.valid_round == -1
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 23.0)
    assert core.valid_round == 0 and core.valid_value == block
    assert core.locked_round == -1 and core.locked_value is None


def test_valid_value_is_reproposed() -> None:
    """Line 15-16: the proposer of a later round proposes validValue with validRound."""
    cluster = make_cluster(4)
    core = started(cluster)
    block = cluster.carry_over(0)
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    feed_votes(core, cluster, [1, 2], PV, 0, block_hash(block))
    assert core.valid_round == 0
    actions = feed_votes(core, cluster, [1, 2], PV, 3, None)  # skip to round 3: member 0 proposes
    assert core.round == 3
    (proposal,) = broadcasts(actions, Proposal)
    assert proposal.round == 3 and proposal.valid_round == 0 and proposal.block == block


def test_round_skip_on_f_plus_one() -> None:
    """Line 55-56: messages of >1/3 of the power at a higher round make the node skip to it."""
    cluster = make_cluster(4)
    core = started(cluster)
    feed_votes(core, cluster, [1], PV, 5, None)
    assert core.round == 0  # 1 of 4 is not more than 1/3
    feed_votes(core, cluster, [2], PC, 5, None)
    assert core.round == 5


def test_timeouts_grow_linearly_with_the_round() -> None:
    """Timeouts carry (height, round, step) and are base + round * delta."""
    cluster = make_cluster(4)
    core = started(cluster)
    feed_votes(core, cluster, [1], PV, 4, None)
    feed_votes(core, cluster, [2], PC, 4, None)
    assert core.round == 4
    core.handle(TimeoutFired(Height(1), Round(4), Step.PROPOSE), 50.0)
    actions = feed_votes(core, cluster, [3], PV, 4, None)
    (timeout,) = of_type(actions, ScheduleTimeout)
    assert (timeout.height, timeout.round, timeout.step) == (1, 4, Step.PREVOTE)
    assert timeout.delay_seconds == TIMEOUTS.prevote + 4 * TIMEOUTS.prevote_delta


def test_decision_in_a_past_round() -> None:
    """Line 49: proposal + 2f+1 precommits for it in an earlier round decide at once."""
    cluster = make_cluster(4)
    core = started(cluster)
    block = cluster.carry_over(0)
    feed_votes(core, cluster, [1, 2], PV, 2, None)
    assert core.round == 2
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 3.0)
    actions = feed_votes(core, cluster, [1, 2, 3], PC, 0, block_hash(block))
    (commit,) = of_type(actions, Commit)
    assert commit.block == block
    assert commit.commit_certificate.round == 0
    assert core.height == 2 and core.round == 0
    assert core.validator_set.indices(commit.commit_certificate.signers) == [1, 2, 3]


def test_future_height_messages_are_buffered() -> None:
    """Messages for the next height are kept and replayed when it starts."""
    cluster = make_cluster(4)
    core = started(cluster)
    block1 = cluster.carry_over(0)
    from consensus.core import ChainTip  # noqa: F401 - documents the restart path

    core.handle(ProposalReceived(cluster.proposal(block1, 0)), 1.0)
    feed_votes(core, cluster, [1, 2, 3], PV, 0, None, height=2)
    feed_votes(core, cluster, [1, 2, 3], PC, 0, block_hash(block1))
    assert core.height == 2
    # the buffered height-2 nil prevotes (3 of 4) were replayed: the nil polka is visible as
    # soon as this node prevotes
    actions = core.handle(TimeoutFired(Height(2), Round(0), Step.PROPOSE), 40.0)
    assert [v.block_hash for v in my_votes(actions, PC)] == [None]


def test_restarted_validator_never_signs_a_conflicting_prevote() -> None:
    """The guard: after a restart with a persisted prevote, a different prevote is refused."""
    cluster = make_cluster(4)
    block = cluster.carry_over(0)
    state = SignerState(height=1, round=0, step=int(Step.PREVOTE), value=b"\x07" * 32)
    core = cluster.core(0)
    core.signer_state = state
    core.handle(Started(), 0.0)
    actions = core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    assert my_votes(actions, PV) == []
    assert core.step == Step.PREVOTE  # the state machine still moves on


def test_vote_from_a_non_validator_is_rejected() -> None:
    """Observers have no power: their votes are refused with a reason."""
    cluster = make_cluster(5, roles=[("trainer", "validator")] * 4 + [("observer",)])
    core = started(cluster)
    actions = core.handle(VoteReceived(cluster.vote(4, PV, 1, 0, None)), 1.0)
    assert of_type(actions, Rejected) == [Rejected("unknown-signer", "vote from a non-validator")]


def test_n6_needs_five_equal_votes_to_commit() -> None:
    """n = 6 equal powers: 4 precommits do not decide, the 5th does."""
    cluster = make_cluster(6)
    core = started(cluster, me=5)
    proposer = core.validator_set.proposer_for(Height(1), Round(0))
    block = cluster.carry_over(0)
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    others = [i for i in range(6) if i != 5 and i != proposer][:3] + [proposer]
    actions = feed_votes(core, cluster, others, PC, 0, block_hash(block))
    assert of_type(actions, Commit) == []
    last = next(i for i in range(5) if i not in others)
    actions = feed_votes(core, cluster, [last], PC, 0, block_hash(block))
    assert len(of_type(actions, Commit)) == 1


def test_conflicting_votes_count_towards_a_value() -> None:
    """An equivocator's second prevote (for v) counts towards v's polka, and is evidence:
    a node that saw the nil version first still sees the round-0 polka for v."""
    from consensus.events import ReportEvidence

    cluster = make_cluster(4)
    core = started(cluster)
    block = cluster.carry_over(0)
    v = block_hash(block)
    feed_votes(core, cluster, [3], PV, 0, None)
    feed_votes(core, cluster, [1, 2], PV, 0, v)
    actions = feed_votes(core, cluster, [3], PV, 0, v)
    assert len(of_type(actions, ReportEvidence)) == 1
    feed_votes(core, cluster, [1], PV, 1, None)
    feed_votes(core, cluster, [2], PC, 1, None)
    assert core.round == 1
    actions = core.handle(ProposalReceived(cluster.proposal(block, 1, valid_round=0)), 2.0)
    assert [vote.block_hash for vote in my_votes(actions, PV)] == [v]


def test_restart_keeps_the_lock() -> None:
    """The lock is persisted with the guard state: after a restart in the same height the
    node still prevotes nil for a value other than the one it locked on."""
    cluster = make_cluster(4)
    core, block = lock_in_round_0(cluster)
    persisted = core.signer_state
    assert (persisted.locked_height, persisted.locked_round) == (1, 0)
    assert persisted.locked_value == block_hash(block)
    restarted = cluster.core(0)
    restarted.signer_state = persisted
    restarted.handle(Started(), 100.0)
    assert restarted.locked_round == 0
    feed_votes(restarted, cluster, [1], PV, 1, None)
    feed_votes(restarted, cluster, [2], PC, 1, None)
    other = cluster.carry_over(1, "second")
    actions = restarted.handle(ProposalReceived(cluster.proposal(other, 1)), 101.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [None]


def test_reproposal_carries_the_polka() -> None:
    """A re-proposal (vr >= 0) carries the round-vr prevotes, aggregated, so a node that missed
    them can still apply line 28 and prevote the block."""
    cluster = make_cluster(4)
    proposer = started(cluster, me=3)  # proposes round 2 of height 1
    block = cluster.carry_over(0)
    proposer.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    feed_votes(proposer, cluster, [1, 2], PV, 0, block_hash(block))
    assert proposer.valid_round == 0
    actions = feed_votes(proposer, cluster, [1, 2], PV, 2, None)
    (proposal,) = broadcasts(actions, Proposal)
    assert proposal.valid_round == 0
    assert proposal.polka is not None and proposal.polka.round == 0
    assert cluster.genesis_set().indices(proposal.polka.signers) == [1, 2, 3]
    late = started(cluster, me=0)  # saw nothing of round 0
    feed_votes(late, cluster, [1], PV, 2, None)
    feed_votes(late, cluster, [2], PC, 2, None)
    assert late.round == 2
    actions = late.handle(ProposalReceived(proposal), 3.0)
    assert [v.block_hash for v in my_votes(actions, PV)] == [block_hash(block)]


def _late_node_sees(cluster: Cluster, proposal: Proposal) -> tuple[list[Hash | None], list[str]]:
    """What a node that saw nothing of round 0 prevotes on `proposal`, and what it rejected."""
    late = started(cluster, me=0)
    feed_votes(late, cluster, [1], PV, 2, None)
    feed_votes(late, cluster, [2], PC, 2, None)
    actions = late.handle(ProposalReceived(proposal), 3.0)
    return [v.block_hash for v in my_votes(actions, PV)], [
        r.reason for r in of_type(actions, Rejected)
    ]


def test_a_forged_polka_is_refused() -> None:
    """A re-proposal whose polka claims prevotes that were never cast (the bitfield names a
    member whose signature is not in the aggregate, or too few members) is `bad-polka`, and a
    node that missed round 0 does not prevote the block on its word."""
    cluster = make_cluster(4)
    proposer = started(cluster, me=3)
    block = cluster.carry_over(0)
    proposer.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    feed_votes(proposer, cluster, [1, 2], PV, 0, block_hash(block))
    (proposal,) = broadcasts(feed_votes(proposer, cluster, [1, 2], PV, 2, None), Proposal)
    assert proposal.polka is not None
    honest = _late_node_sees(cluster, proposal)
    assert honest == ([block_hash(block)], [])
    # the same proposal with a forged polka: four signers claimed, three signatures aggregated
    forged = dataclasses.replace(
        proposal,
        polka=dataclasses.replace(
            proposal.polka, signers=cluster.genesis_set().bitfield([0, 1, 2, 3])
        ),
    )
    assert _late_node_sees(cluster, forged) == ([], ["bad-polka"])  # waits: no line 28
    too_few = dataclasses.replace(
        proposal,
        polka=dataclasses.replace(proposal.polka, signers=cluster.genesis_set().bitfield([1])),
    )
    assert _late_node_sees(cluster, too_few) == ([], ["bad-polka"])


def test_polka_size_does_not_grow_with_its_prevotes() -> None:
    """The certificate is one aggregate signature and a bitfield: 3 or 99 prevotes, same size
    but for the bitfield's ceil(n/8) bytes (carrying the votes grew ~200 B a member)."""
    from consensus.codec import encode
    from consensus.crypto import FakeVerifier
    from consensus.types import PolkaCertificate

    verifier = FakeVerifier({})
    sizes = []
    for n in (4, 150):
        sig = verifier.aggregate([bytes(96)] * (2 * n // 3 + 1))
        bitfield = bytes((n + 7) // 8)
        sizes.append(len(encode(PolkaCertificate(Round(0), bitfield, sig))))
    assert sizes[1] - sizes[0] <= (150 - 4) // 8 + 2


def test_buffered_heights_commit_in_one_call_without_reentering_the_dispatcher() -> None:
    """Heights 2 and 3 buffered while at height 1: the precommit that decides height 1 also
    decides 2 and 3 on replay, and the dispatcher is never re-entered (no recursion)."""
    from consensus.ledger import apply_block, genesis_ledger
    from consensus.types import CommitCertificate

    cluster = make_cluster(4)
    core = started(cluster)
    ledger, parent, last_commit, blocks = genesis_ledger(cluster.genesis), None, None, []
    for height in (1, 2, 3):
        block = cluster.carry_over(
            0,
            height=height,
            ledger=ledger,
            parent_hash=parent,
            time_ms=1000 * height,
            last_commit=last_commit,
        )
        votes = [cluster.vote(i, PC, height, 0, block_hash(block)) for i in (1, 2, 3)]
        last_commit = CommitCertificate(
            Height(height),
            Round(0),
            block_hash(block),
            core.validator_set.bitfield([1, 2, 3]),
            cluster.verifier.aggregate([v.signature for v in votes]),
        )
        ledger, parent = apply_block(ledger, block), block_hash(block)
        blocks.append((block, votes))
    for block, votes in blocks[:0:-1]:  # heights 3 and 2 arrive first
        core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
        for vote in votes:
            core.handle(VoteReceived(vote), 1.0)
    block1, votes1 = blocks[0]
    core.handle(ProposalReceived(cluster.proposal(block1, 0)), 1.0)
    for vote in votes1[:2]:
        core.handle(VoteReceived(vote), 1.0)
    depth, deepest = 0, 0
    dispatch = core._dispatch

    def counting_dispatch(*args):  # type: ignore[no-untyped-def]
        nonlocal depth, deepest
        depth += 1
        deepest = max(deepest, depth)
        try:
            dispatch(*args)
        finally:
            depth -= 1

    core._dispatch = counting_dispatch  # type: ignore[method-assign]
    actions = core.handle(VoteReceived(votes1[2]), 2.0)
    assert [c.block for c in of_type(actions, Commit)] == [b for b, _ in blocks]
    assert core.height == 4
    assert deepest == 1


def test_a_chain_that_decides_every_height_at_once_stops_loudly() -> None:
    """A lone validator without trainers decides each height as it starts: the core raises
    instead of deciding heights forever inside one call."""
    import pytest

    from consensus.errors import ConsensusInvariantError

    cluster = make_cluster(1, expected_trainers=0)
    with pytest.raises(ConsensusInvariantError, match="decided more than"):
        cluster.core(0).handle(Started(), 0.0)
