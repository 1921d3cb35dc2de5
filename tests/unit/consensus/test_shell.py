"""The node shell: a core's actions become ordered I/O requests; re-sends, sync polls, candidate
assembly, phases and counted rejections are the shell's, the same for every adapter."""

from __future__ import annotations

from consensus_harness import CHAIN, InstantNet, make_cluster

from consensus import codec
from consensus.events import TrainingFinished
from consensus.shell import (
    Aggregate,
    CountRejection,
    FetchBlocks,
    FetchUpdate,
    NodeShell,
    PersistSigner,
    Publish,
    ShellPolicy,
    StartTimer,
    StoreCommit,
    Train,
    topic_of,
)
from consensus.signing import vote_bytes
from consensus.types import (
    Candidate,
    Hash,
    Height,
    Round,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
    VoteType,
)


def _trained(shell: NodeShell, height: int = 1, now: float = 1.0) -> list[object]:
    base = shell.core.model_hash
    done = TrainingFinished(Height(height), base, Hash(b"\x07" * 32), 100, 0.5)
    return list(shell.trained(done, seconds=0.25, now=now))


def test_start_asks_for_training_and_timers() -> None:
    """At the start of a height a trainer gets Train and the update-window / propose timers."""
    cluster = make_cluster(4)
    shell = NodeShell(cluster.core(1))
    requests = shell.start(0.0)
    assert any(isinstance(r, Train) for r in requests)
    assert sum(isinstance(r, StartTimer) for r in requests) >= 2


def test_a_site_that_does_not_train_gets_no_train_request() -> None:
    """trains=False drops StartTraining (no trainer role, or no data at this site)."""
    shell = NodeShell(make_cluster(4).core(1), trains=False)
    assert not any(isinstance(r, Train) for r in shell.start(0.0))


def test_a_signed_receipt_is_published_on_its_topic() -> None:
    """The trainer's answer becomes a signed UpdateReceipt published on the receipts topic."""
    shell = NodeShell(make_cluster(4).core(1))
    shell.start(0.0)
    publishes = [r for r in _trained(shell) if isinstance(r, Publish)]
    assert [type(p.message) for p in publishes] == [UpdateReceipt]
    assert publishes[0].topic == "receipts" and not publishes[0].resend
    assert shell.times.train_s == 0.25 and shell.times.trained_at == 1.0


def test_signer_state_is_persisted_before_the_vote_that_needs_it() -> None:
    """In every batch, a PersistSigner comes before each Publish of a new vote or proposal."""
    cluster = make_cluster(4)
    net = InstantNet(cluster, [cluster.core(i) for i in range(4)], max_height=1)
    net.start()
    for node in range(4):
        pending = False
        checked = 0
        for n, request in net.log:
            if n != node:
                continue
            if isinstance(request, PersistSigner):
                pending = True
            elif isinstance(request, Publish) and isinstance(request.message, Vote):
                assert pending, f"node {node} published a vote with no persist before it"
                pending = False
                checked += 1
        assert checked >= 2


def test_a_delivered_receipt_is_prefetched_first() -> None:
    """A peer's receipt: FetchUpdate (author first) before anything the core does with it."""
    cluster = make_cluster(4)
    author = NodeShell(cluster.core(2))
    author.start(0.0)
    receipt = next(r.message for r in _trained(author) if isinstance(r, Publish))
    shell = NodeShell(cluster.core(1))
    shell.start(0.0)
    requests = shell.deliver(receipt, 1.5)
    assert requests[0] == FetchUpdate(receipt.blob_hash, ValidatorIndex(2))
    assert shell.times.last_receipt_at == 1.5


def test_tick_resends_what_was_signed_only_when_the_height_is_idle() -> None:
    """No re-send before `resend_after`; after it, the same bytes again, marked as re-sends."""
    shell = NodeShell(make_cluster(4).core(1), policy=ShellPolicy(resend_after=3.0))
    shell.start(0.0)
    original = next(r for r in _trained(shell) if isinstance(r, Publish))
    assert not any(isinstance(r, Publish) for r in shell.tick(2.0))
    again = [r for r in shell.tick(3.5) if isinstance(r, Publish)]
    assert [codec.encode_message(r.message) for r in again] == [
        codec.encode_message(original.message)
    ]
    assert all(r.resend for r in again)


def test_resends_at_one_idle_height_back_off() -> None:
    """Re-sends at a stalled height come at growing gaps (3, 6, 12 s), capped at resend_max."""
    policy = ShellPolicy(resend_after=3.0, resend_backoff=2.0, resend_max=12.0)
    shell = NodeShell(make_cluster(4).core(1), policy=policy)
    shell.start(0.0)
    _trained(shell)
    resent_at = [
        t / 2 for t in range(0, 100) if any(isinstance(r, Publish) for r in shell.tick(t / 2))
    ]
    assert resent_at == [3.0, 9.0, 21.0, 33.0, 45.0]


def test_an_idle_height_polls_one_peer_per_tick_round_robin() -> None:
    """With poll_when_idle, each idle tick asks the next peer's turn for blocks."""
    shell = NodeShell(make_cluster(4).core(1), policy=ShellPolicy(resend_after=3.0))
    shell.start(0.0)
    first = [r for r in shell.tick(3.0) if isinstance(r, FetchBlocks)]
    shell.blocks_fetched((), 3.1)
    second = [r for r in shell.tick(6.0) if isinstance(r, FetchBlocks)]
    assert first == [FetchBlocks(Height(1), 1)] and second == [FetchBlocks(Height(1), 2)]
    assert not [r for r in shell.tick(6.0, connected=False) if isinstance(r, FetchBlocks)]


def test_one_sync_request_in_flight_until_answered_or_expired() -> None:
    """A second FetchBlocks waits for the answer of the first, or for its timeout."""
    shell = NodeShell(
        make_cluster(4).core(1), policy=ShellPolicy(resend_after=1.0, sync_timeout=10.0)
    )
    shell.start(0.0)
    assert any(isinstance(r, FetchBlocks) for r in shell.tick(1.0))
    assert not any(isinstance(r, FetchBlocks) for r in shell.tick(2.0))
    assert any(isinstance(r, FetchBlocks) for r in shell.tick(11.5))  # expired
    shell.blocks_fetched((), 11.6)
    assert any(isinstance(r, FetchBlocks) for r in shell.tick(12.0))  # answered


def test_a_peer_ahead_makes_the_tick_ask_every_peer() -> None:
    """A delivered message of a later height: the idle poll asks peers until one has blocks."""
    cluster = make_cluster(4)
    shell = NodeShell(cluster.core(1), policy=ShellPolicy(resend_after=1.0))
    shell.start(0.0)
    shell.deliver(cluster.vote(3, VoteType.PREVOTE, 3, 0, None), 0.5)
    fetches = [r for r in shell.tick(1.0) if isinstance(r, FetchBlocks)]
    assert fetches == [FetchBlocks(Height(1), None)]


def test_the_shell_assembles_and_signs_the_candidate() -> None:
    """The adapter only aggregates: the shell builds the candidate (proposer, rule, order)."""
    cluster = make_cluster(4)
    shells = [NodeShell(cluster.core(i)) for i in range(4)]
    net = InstantNet(cluster, [s.core for s in shells], max_height=1)
    net.start()
    aggregates = [(n, r) for n, r in net.log if isinstance(r, Aggregate)]
    assert aggregates
    node, aggregate = aggregates[0]
    candidates = [
        r.message
        for n, r in net.log
        if n == node and isinstance(r, Publish) and isinstance(r.message, Candidate)
    ]
    assert candidates
    candidate = candidates[0]
    assert candidate.proposer == node
    assert candidate.rule == cluster.genesis.aggregation_rule
    assert candidate.receipts == aggregate.action.receipts
    assert topic_of(candidate) == "candidates"


def test_commit_carries_phases_and_missing_validators() -> None:
    """StoreCommit has every phase, and counts voting validators we never heard precommit."""
    cluster = make_cluster(4)
    net = InstantNet(cluster, [cluster.core(i) for i in range(4)], max_height=2)
    net.start()
    stores = [r for n, r in net.log if n == 0 and isinstance(r, StoreCommit)]
    assert [int(s.commit.block.height) for s in stores][:2] == [1, 2]
    assert stores[0].missing_validators is None
    assert stores[1].missing_validators == 0  # lossless: every precommit of height 1 arrived
    assert set(stores[0].phases) >= {"train", "update_gossip", "block_interval", "evaluate"}


def test_a_vote_with_a_bad_signature_is_counted_by_reason() -> None:
    """A forged vote that reaches the core becomes a CountRejection with a stable code."""
    cluster = make_cluster(4)
    shell = NodeShell(cluster.core(0))
    shell.start(0.0)
    honest = cluster.vote(2, VoteType.PREVOTE, 1, 0, None)
    forged = Vote(
        VoteType.PREVOTE,
        Height(1),
        Round(0),
        Hash(b"\x09" * 32),
        ValidatorIndex(2),
        cluster.signers[1].sign(vote_bytes(CHAIN, honest)),
    )
    requests = [*shell.deliver(honest, 0.1), *shell.deliver(forged, 0.2)]
    rejections = [r for r in requests if isinstance(r, CountRejection)]
    assert [r.reason for r in rejections] == ["bad-signature"]


def test_the_same_inputs_give_the_same_requests() -> None:
    """Determinism: two clusters fed the same events produce byte-identical publishes."""

    def run() -> list[bytes]:
        cluster = make_cluster(4)
        net = InstantNet(cluster, [cluster.core(i) for i in range(4)], max_height=2)
        net.start()
        return [codec.encode_message(r.message) for _, r in net.log if isinstance(r, Publish)]

    assert run() == run()
