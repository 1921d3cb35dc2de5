"""The proof-of-learning phase end to end on a lossless instant network of real cores."""

from __future__ import annotations

from consensus_harness import InstantNet, broadcasts, make_cluster, of_type

from consensus.codec import block_hash
from consensus.events import Rejected, ReportEvidence, VoteReceived
from consensus.learning_state import ProposerStage
from consensus.shell import Aggregate, NoteEvidence
from consensus.types import Step, UpdateReceipt, VoteType
from consensus.validity import BlockChecker


def run_cluster(n: int = 4, **kwargs):  # type: ignore[no-untyped-def]
    cluster = make_cluster(n, roles=kwargs.pop("roles", None))
    cores = [cluster.core(i) for i in range(n)]
    net = InstantNet(cluster, cores, **kwargs)
    net.start()
    return cluster, cores, net


def test_improved_candidates_commit_model_blocks_with_certificates() -> None:
    """>2/3 "improved": every node commits the same model blocks with valid certificates."""
    cluster, cores, net = run_cluster(4)
    checker = BlockChecker(cluster.genesis, cores[0].validator_set, cluster.verifier)
    hashes = {i: [block_hash(c.block) for c in net.commits[i]] for i in range(4)}
    assert all(len(h) == 3 for h in hashes.values())
    assert len({tuple(h) for h in hashes.values()}) == 1
    for commit in net.commits[0]:
        block = commit.block
        assert not block.is_carry_over
        base = block.receipts[0].base_model_hash
        assert checker.improvement_certificate_problem(block, base) is None
        assert commit.commit_certificate.block_hash == block_hash(block)
        assert checker.commit_certificate_problem(commit.commit_certificate) is None
        assert len(block.eval_reports) >= 3
    assert cores[0].model_hash == net.commits[0][-1].block.header.model_hash


def test_update_window_closes_when_every_trainer_reported() -> None:
    """No timeout fired at all, yet blocks committed: the window closed on the last receipt."""
    _, _, net = run_cluster(4)
    assert net.timeouts and all(len(net.commits[i]) == 3 for i in range(4))


def test_ledger_credits_accepted_updates() -> None:
    """Every trainer's update was accepted three times: samples and reputation credited."""
    _, cores, _ = run_cluster(4)
    record = cores[2].ledger.participants[2]
    assert record.accepted_updates == 3 and record.samples_contributed == 300
    assert record.reputation == 30 and abs(record.epsilon_spent - 0.3) < 1e-9


def test_more_than_a_third_not_improved_gives_carry_over() -> None:
    """2 of 4 say "not improved": a certificate is impossible, the model is carried over."""
    cluster, cores, net = run_cluster(4, verdict=lambda node, c: node >= 2)
    blocks = [c.block for c in net.commits[3]]
    assert len(blocks) == 3 and all(b.is_carry_over for b in blocks)
    assert all("not improved" in b.carry_over_reason for b in blocks)
    assert cores[3].model_hash == cluster.genesis.initial_model_hash


def test_one_of_four_not_improved_still_certifies() -> None:
    """1 of 4 "not improved" leaves 3 of 4 > 2/3 "improved": model blocks."""
    _, _, net = run_cluster(4, verdict=lambda node, c: node != 1)
    assert all(not c.block.is_carry_over for c in net.commits[0])


def test_observer_follows_and_never_signs() -> None:
    """An observer (me=None) commits the same chain and broadcasts nothing."""
    cluster = make_cluster(5, roles=[("trainer", "validator")] * 4 + [("observer",)])
    cores = [cluster.core(i) for i in range(4)] + [cluster.core(None)]
    net = InstantNet(cluster, cores)
    net.start()
    assert [block_hash(c.block) for c in net.commits[4]] == [
        block_hash(c.block) for c in net.commits[0]
    ]
    assert broadcasts([a for n, a in net.log if n == 4], object) == []


def test_too_few_updates_at_the_window_timeout_gives_carry_over() -> None:
    """Receipts of 2 of 4 trainers (not > 2/3) at the window timeout: carry-over, reason kept."""
    lost = {2, 3}
    cluster, cores, net = run_cluster(
        4, drop=lambda src, dst, m: isinstance(m, UpdateReceipt) and src in lost
    )
    assert all(net.commits[i] == [] for i in range(4))
    proposer = cores[0].validator_set.proposer_for(cores[0].height, cores[0].round)
    assert cores[proposer].proposer_stage == ProposerStage.WAITING_FOR_UPDATES
    net.fire_timeouts(Step.UPDATE_WINDOW)
    block = net.commits[0][0].block
    assert block.is_carry_over and block.carry_over_reason.startswith("too few updates: 2 of 4")


def test_three_of_four_receipts_suffice_at_the_window_timeout() -> None:
    """Receipts of 3 of 4 trainers (> 2/3) at the window timeout: a candidate is built."""
    cluster, cores, net = run_cluster(
        4, drop=lambda src, dst, m: isinstance(m, UpdateReceipt) and src == 3
    )
    net.fire_timeouts(Step.UPDATE_WINDOW)
    builds = [r.action for n, r in net.log if isinstance(r, Aggregate)]
    assert builds and len(builds[0].receipts) == 3
    assert not net.commits[0][0].block.is_carry_over


def test_attestation_timeout_gives_carry_over() -> None:
    """Attestations lost: at the attestation timeout the proposer carries the model over."""
    from consensus.types import Attestation

    _, cores, net = run_cluster(4, drop=lambda src, dst, m: isinstance(m, Attestation))
    assert net.commits[0] == []
    net.fire_timeouts(Step.ATTESTATION)
    block = net.commits[0][0].block
    assert block.is_carry_over and block.carry_over_reason == "attestation timeout"


def test_equivocation_becomes_evidence_and_is_slashed() -> None:
    """Two different prevotes of one validator: evidence reported, put in a block, slashed."""
    cluster = make_cluster(4)
    cores = [cluster.core(i) for i in range(4)]
    net = InstantNet(cluster, cores, max_height=2)
    a = cluster.vote(3, VoteType.PREVOTE, 1, 7, None)
    b = cluster.vote(3, VoteType.PREVOTE, 1, 7, b"\x01" * 32)
    for i in range(3):
        net.queue.append((i, VoteReceived(a)))
        net.queue.append((i, VoteReceived(b)))
    net.start()
    reported = [r for n, r in net.log if isinstance(r, NoteEvidence)]
    assert reported
    included = [e for c in net.commits[0] for e in c.block.evidence]
    assert len(included) == 1
    checker = BlockChecker(cluster.genesis, cores[0].validator_set, cluster.verifier)
    assert checker.evidence_problem(included[0], 2) is None
    assert cores[0].ledger.participants[3].slashed == 1
    assert cores[0].ledger.participants[3].reputation < 0


def test_forged_vote_in_a_batch_is_found_and_dropped() -> None:
    """A vote with a bad signature among good ones: the batch fails, the forgery is dropped,
    the good votes still make the quorum."""
    from dataclasses import replace

    from consensus.events import ProposalReceived, Started

    cluster = make_cluster(4)
    core = cluster.core(0)
    core.handle(Started(), 0.0)
    block = cluster.carry_over(0)
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    forged = replace(
        cluster.vote(1, VoteType.PREVOTE, 1, 0, block_hash(block)), signature=b"\x05" * 96
    )
    core.handle(VoteReceived(forged), 1.0)
    actions = core.handle(
        VoteReceived(cluster.vote(2, VoteType.PREVOTE, 1, 0, block_hash(block))), 1.0
    )
    assert of_type(actions, Rejected) == [Rejected("bad-signature", "vote with a bad signature")]
    assert core.locked_round == -1  # only 2 good prevotes (0 and 2) so far
    actions = core.handle(
        VoteReceived(cluster.vote(3, VoteType.PREVOTE, 1, 0, block_hash(block))), 1.0
    )
    assert core.locked_round == 0
    assert of_type(actions, ReportEvidence) == []


def test_diverged_losses_still_make_decodable_messages() -> None:
    """A NaN or infinite loss from a diverged model is clamped, so peers can decode it."""
    import math

    from consensus.codec import decode_message, encode_message
    from consensus.events import TrainingFinished

    cluster = make_cluster(4)
    cores = [cluster.core(i) for i in range(4)]
    net = InstantNet(cluster, cores, max_height=1)
    net.start()
    core = cores[0]
    receipt_actions = core.handle(
        TrainingFinished(core.height, core.model_hash, b"\x03" * 32, 10, float("nan"), math.inf),
        99.0,
    )
    for receipt in broadcasts(receipt_actions, UpdateReceipt):
        assert decode_message(encode_message(receipt)) == receipt
    from consensus.learning_state import finite

    assert finite(float("nan")) == finite(math.inf) == -finite(-math.inf) > 1e300
    assert finite(0.25) == 0.25
    assert broadcasts(receipt_actions, UpdateReceipt)


def test_one_evaluation_per_round() -> None:
    """A proposer gossiping two different candidates in one round gets one evaluation."""
    from dataclasses import replace

    from consensus.events import CandidateReceived, EvaluateCandidate, Started
    from consensus.signing import candidate_bytes, receipt_bytes
    from consensus.types import Candidate, Hash, Height, Round, ValidatorIndex

    cluster = make_cluster(4)
    core = cluster.core(0)
    core.handle(Started(), 0.0)
    receipts = []
    for i in range(4):
        r = UpdateReceipt(
            ValidatorIndex(i), Height(1), core.model_hash, Hash(bytes([i]) * 32), 5, 0.1, 0.0
        )
        receipts.append(
            replace(r, signature=cluster.signers[i].sign(receipt_bytes("test-chain", r)))
        )

    def candidate(k: int) -> Candidate:
        c = Candidate(
            Height(1),
            Round(0),
            ValidatorIndex(1),
            core.model_hash,
            Hash(bytes([9 + k]) * 32),
            tuple(receipts[: 3 + k]),
            (),
            "fedavg",
        )
        return replace(c, signature=cluster.signers[1].sign(candidate_bytes("test-chain", c)))

    first = core.handle(CandidateReceived(candidate(0)), 1.0)
    second = core.handle(CandidateReceived(candidate(1)), 1.0)
    assert len(of_type(first, EvaluateCandidate)) == 1
    assert of_type(second, EvaluateCandidate) == []


def test_forged_vote_planted_first_does_not_hide_the_real_one() -> None:
    """A forged vote that arrives before the real vote of the same validator is replaced."""
    from dataclasses import replace

    from consensus.events import ProposalReceived, Started

    cluster = make_cluster(4)
    core = cluster.core(0)
    core.handle(Started(), 0.0)
    block = cluster.carry_over(0)
    v = block_hash(block)
    core.handle(ProposalReceived(cluster.proposal(block, 0)), 1.0)
    real = cluster.vote(1, VoteType.PREVOTE, 1, 0, v)
    core.handle(VoteReceived(replace(real, signature=b"\x05" * 96)), 1.0)
    core.handle(VoteReceived(real), 1.0)
    core.handle(VoteReceived(cluster.vote(2, VoteType.PREVOTE, 1, 0, v)), 1.0)
    assert core.locked_round == 0
