"""The genesis DP budget as chain rules: ledger epsilon is the accountant's, validators refuse a
receipt past the budget (`dp-budget`) or with a made-up increment (`dp-increment`), and the
chain stays live once every budget is spent (docs/THREAT-MODEL.md "Differential privacy")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from consensus_harness import CHAIN, TIMEOUTS, Cluster, InstantNet, fake_signers, of_type
from opacus.accountants import RDPAccountant

from consensus.codec import block_hash
from consensus.core import ChainTip, ConsensusCore
from consensus.crypto import FakeVerifier
from consensus.events import ReceiptReceived, Rejected, Started, StartTraining, TrainingFinished
from consensus.genesis import make_genesis
from consensus.ledger import genesis_ledger
from consensus.privacy import DP_BUDGET, DP_INCREMENT, PrivacyRules
from consensus.shell import Train
from consensus.signing import receipt_bytes
from consensus.types import (
    CommitCertificate,
    Hash,
    Height,
    Ledger,
    Privacy,
    Round,
    UpdateReceipt,
    ValidatorIndex,
)
from learning.dp import RDP_ORDERS, PolicyAccountant
from node.chain import Chain
from node.home import NodeHome
from node.store import ChainStore

NOISE = 1.2
DELTA = 1e-5
ACCOUNTANT = PolicyAccountant(NOISE, DELTA)
BUDGET = ACCOUNTANT.epsilon_after(3) + 1e-6  # three releases fit, a fourth does not
POLICY = Privacy(clip_norm=1.0, noise_multiplier=NOISE, delta=DELTA, epsilon_budget=BUDGET)


def _cluster(n: int = 4, policy: Privacy = POLICY) -> Cluster:
    signers = fake_signers(n)
    genesis = make_genesis(
        CHAIN,
        signers,
        timeouts=TIMEOUTS,
        initial_model_hash=hashlib.sha256(b"model-0").digest(),
        privacy=policy,
    )
    return Cluster(genesis, signers, FakeVerifier.for_signers(signers))


def _core(cluster: Cluster, me: int, tip: ChainTip | None = None) -> ConsensusCore:
    return ConsensusCore(
        cluster.genesis,
        verifier=cluster.verifier,
        me=ValidatorIndex(me),
        signer=cluster.signers[me],
        tip=tip,
        accountant=ACCOUNTANT,
    )


@dataclass
class DpNet(InstantNet):
    """InstantNet whose trainers answer as node/app.py does: the accountant's epsilon after
    the ledger's releases plus this one, and no update once the budget is spent."""

    def _perform(self, node: int, request: object) -> None:
        if not isinstance(request, Train):
            super()._perform(node, request)  # type: ignore[arg-type]
            return
        action = request.action
        if action.dp_exhausted:
            return
        blob = hashlib.sha256(f"update-{node}-{action.height}".encode()).digest()
        epsilon = ACCOUNTANT.epsilon_after(action.dp_releases + 1)
        done = TrainingFinished(
            action.height, action.base_model_hash, Hash(blob), 100, 0.5, epsilon
        )
        now = self.now
        self.queue.append((node, lambda s: s.trained(done, seconds=0.0, now=now)))


def _run(max_height: int, **kwargs: object) -> tuple[Cluster, list[ConsensusCore], DpNet]:
    cluster = _cluster()
    cores = [_core(cluster, i) for i in range(4)]
    net = DpNet(cluster, cores, max_height=max_height, **kwargs)  # type: ignore[arg-type]
    net.start()
    return cluster, cores, net


def _opacus_epsilon(releases: int) -> float:
    """A fresh opacus RDP accountant over `releases` steps at sampling rate 1."""
    if releases == 0:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [(NOISE, 1.0, releases)]
    return float(accountant.get_epsilon(DELTA, alphas=RDP_ORDERS))


def test_ledger_epsilon_equals_the_accountants() -> None:
    """After three model blocks each site's ledger epsilon is opacus's epsilon of 3 releases."""
    _, cores, net = _run(max_height=3)
    assert [c.block.is_carry_over for c in net.commits[0]] == [False, False, False]
    for site in range(4):
        record = cores[0].ledger.participants[site]
        assert record.accepted_updates == 3
        assert record.epsilon_spent == pytest.approx(_opacus_epsilon(3), rel=1e-9)
    receipts = [r for c in net.commits[0] for r in c.block.receipts if r.author == 1]
    increments = [r.epsilon_spent for r in receipts]
    expected = [_opacus_epsilon(k) - _opacus_epsilon(k - 1) for k in (1, 2, 3)]
    assert increments == pytest.approx(expected, rel=1e-9)  # the increment, not the total


def test_releases_in_a_not_improved_height_are_spent_on_the_ledger() -> None:
    """No candidate is certified, yet every carry-over block carries the height's receipts and
    the ledger spends their epsilon: two heights, two releases per site."""
    _, cores, net = _run(max_height=2, verdict=lambda node, candidate: False)
    blocks = [c.block for c in net.commits[1]]
    assert all(b.is_carry_over and len(b.receipts) == 4 for b in blocks)
    for record in cores[1].ledger.participants:
        assert record.accepted_updates == 0
        assert record.epsilon_spent == pytest.approx(_opacus_epsilon(2), rel=1e-9)


def test_spent_budgets_stop_the_sites_and_the_chain_stays_live() -> None:
    """A fourth release would pass the budget: nobody trains, nobody waits, blocks go on."""
    _, cores, net = _run(max_height=6)
    blocks = [c.block for c in net.commits[0]]
    assert len(blocks) == 6
    assert [b.is_carry_over for b in blocks] == [False] * 3 + [True] * 3
    assert all(b.carry_over_reason == "every trainer's privacy budget is spent" for b in blocks[3:])
    # no timer was fired (InstantNet only fires them when asked): nobody waited for updates
    trains = [r.action for _, r in net.log if isinstance(r, Train) and r.action.height > 3]
    assert trains and all(a.dp_exhausted for a in trains)
    for record in cores[2].ledger.participants:
        assert record.epsilon_spent <= BUDGET


def _tip_at_budget(cluster: Cluster, releases: int) -> ChainTip:
    """A chain tip at height 1 whose ledger has every site at `releases` releases."""
    base = genesis_ledger(cluster.genesis)
    records = tuple(
        replace(r, accepted_updates=releases, epsilon_spent=ACCOUNTANT.epsilon_after(releases))
        for r in base.participants
    )
    ledger = Ledger(Height(1), base.model_hash, records)
    block = cluster.carry_over(ledger=ledger)
    cert = CommitCertificate(Height(1), Round(0), block_hash(block), b"\x0f", bytes(96))  # type: ignore[arg-type]
    return ChainTip(block, cert, ledger)


def _receipt(cluster: Cluster, author: int, epsilon: float) -> UpdateReceipt:
    receipt = UpdateReceipt(
        ValidatorIndex(author),
        Height(2),
        genesis_ledger(cluster.genesis).model_hash,
        Hash(hashlib.sha256(b"u").digest()),
        100,
        0.5,
        epsilon,
    )
    return replace(receipt, signature=cluster.signers[author].sign(receipt_bytes(CHAIN, receipt)))


def _deliver(core: ConsensusCore, receipt: UpdateReceipt) -> list[Rejected]:
    core.handle(Started(), 0.0)
    return of_type(core.handle(ReceiptReceived(receipt), 0.1), Rejected)


def test_a_receipt_past_the_budget_is_refused_and_accepted_without_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Site 1 at three releases claims the fourth's increment: `dp-budget`; with the budget
    check off the same receipt is taken into the height's update window."""
    cluster = _cluster()
    tip = _tip_at_budget(cluster, 3)
    claim = ACCOUNTANT.epsilon_after(4) - ACCOUNTANT.epsilon_after(3)
    receipt = _receipt(cluster, 1, claim)
    core = _core(cluster, 0, tip)
    assert [r.reason for r in _deliver(core, receipt)] == [DP_BUDGET]
    problem = core.checker.receipts_problem([receipt], 2, receipt.base_model_hash, tip.ledger)
    assert problem is not None and problem.startswith(DP_BUDGET + ":")

    monkeypatch.setattr(PrivacyRules, "over_budget", lambda self, epsilon: False)
    unchecked = _core(cluster, 0, tip)
    assert _deliver(unchecked, receipt) == []
    assert (
        unchecked.checker.receipts_problem([receipt], 2, receipt.base_model_hash, tip.ledger)
        is None
    )


@pytest.mark.parametrize(
    ("claim", "what"),
    [
        (ACCOUNTANT.epsilon_after(2), "the running total (the old receipts)"),
        (0.001, "a made-up small increment"),
        (0.0, "no increment at all"),
    ],
    ids=["running-total", "made-up", "zero"],
)
def test_a_receipt_whose_increment_is_not_a_release_is_refused(claim: float, what: str) -> None:
    """Site 1 at one release: only eps(j) - eps(1) for some j > 1 is an increment (a budget
    wide enough that only the increment rule can refuse)."""
    cluster = _cluster(policy=replace(POLICY, epsilon_budget=100.0))
    core = _core(cluster, 0, _tip_at_budget(cluster, 1))
    assert [r.reason for r in _deliver(core, _receipt(cluster, 1, claim))] == [DP_INCREMENT], what


def test_a_release_that_missed_a_block_is_accounted_by_the_next_receipt() -> None:
    """A site whose second release ended in a carry-over claims eps(3) - eps(1): admitted."""
    cluster = _cluster()
    core = _core(cluster, 0, _tip_at_budget(cluster, 1))
    claim = ACCOUNTANT.epsilon_after(3) - ACCOUNTANT.epsilon_after(1)
    assert _deliver(core, _receipt(cluster, 1, claim)) == []


def test_the_trainer_is_told_its_ledger_releases() -> None:
    """StartTraining carries the ledger's releases and epsilon; a spent site is told so."""
    cluster = _cluster()
    for releases, exhausted in ((1, False), (3, True)):
        core = _core(cluster, 2, _tip_at_budget(cluster, releases))
        (start,) = of_type(core.handle(Started(), 0.0), StartTraining)
        assert start.dp_releases == releases and start.dp_exhausted is exhausted
        assert start.dp_epsilon_spent == ACCOUNTANT.epsilon_after(releases)


def test_a_dp_genesis_needs_an_accountant() -> None:
    """The core refuses to run a DP genesis without the accountant it checks receipts with."""
    cluster = _cluster()
    with pytest.raises(ValueError, match="needs an accountant"):
        ConsensusCore(cluster.genesis, verifier=cluster.verifier)


def test_a_restart_does_not_reset_the_budget(tmp_path: Path) -> None:
    """The ledger in the real SQLite store, reopened by a restarted node, still holds the three
    releases: the new core tells its trainer the budget is spent and nobody waits for it."""
    cluster, _, net = _run(max_height=3)
    home = NodeHome(tmp_path)
    store = ChainStore.open(home)
    for commit in net.commits[2]:
        Chain(store).append(commit)
    store.close()

    store = ChainStore.open(home)  # the restarted node: nothing of the old one in memory
    try:
        tip = Chain(store).tip()
        assert tip is not None
        core = _core(cluster, 2, tip)
        actions = core.handle(Started(), 0.0)
    finally:
        store.close()
    (start,) = of_type(actions, StartTraining)
    assert start.dp_releases == 3 and start.dp_exhausted
    assert start.dp_epsilon_spent == pytest.approx(_opacus_epsilon(3), rel=1e-9)
