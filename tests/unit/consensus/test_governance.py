"""Governance (consensus/governance.py): member-set changes voted on chain, the set a function
of height, every bad transaction refused with one sentence, and key rotation."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from consensus_harness import CHAIN, Cluster, InstantNet, make_cluster

from consensus.codec import hash_of
from consensus.core import ConsensusCore
from consensus.crypto import BlsSigner, BlsVerifier, FakeSigner, FakeVerifier
from consensus.events import GovernanceRequested, Rejected
from consensus.genesis import make_genesis
from consensus.governance import (
    GOVERNANCE_DELAY,
    approval_problem,
    approval_sign_bytes,
    block_governance_problem,
    expected_trainers,
    next_members,
    proposal_id,
    proposal_problem,
    proposal_sign_bytes,
)
from consensus.ledger import apply_block, genesis_ledger
from consensus.shell import GOVERNANCE, Publish
from consensus.signing import vote_bytes, vote_sign_bytes
from consensus.types import (
    CHANGE_ADD,
    CHANGE_POWER,
    CHANGE_REMOVE,
    CHANGE_ROTATE,
    ROLE_TRAINER,
    ROLE_VALIDATOR,
    CommitCertificate,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Height,
    Ledger,
    MemberChange,
    ParticipantRecord,
    Round,
    ValidatorIndex,
    ValidatorInfo,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet

ROLES = (ROLE_TRAINER, ROLE_VALIDATOR)


def _cluster(n: int = 4, extra: int = 1) -> tuple[Cluster, list[FakeSigner]]:
    cluster = make_cluster(n)
    others = [FakeSigner(bytes([200 + i]) * 32) for i in range(extra)]
    verifier = FakeVerifier.for_signers([*cluster.signers, *others])
    return replace(cluster, verifier=verifier), others


def _info(signer: FakeSigner | BlsSigner, name: str, peer: str, power: int = 1) -> ValidatorInfo:
    return ValidatorInfo(
        name=name,
        public_key=signer.public_key,
        proof_of_possession=signer.prove_possession(),
        peer_id=peer,
        power=power,
        roles=ROLES,
    )


def _propose(
    cluster: Cluster, change: MemberChange, by: int, height: int = 0
) -> GovernanceProposal:
    p = GovernanceProposal(change, Height(height), ValidatorIndex(by))
    return replace(p, signature=cluster.signers[by].sign(proposal_sign_bytes(CHAIN, p)))


def _approve(cluster: Cluster, pid: Hash, by: int) -> GovernanceApproval:
    a = GovernanceApproval(pid, ValidatorIndex(by))
    return replace(a, signature=cluster.signers[by].sign(approval_sign_bytes(CHAIN, pid)))


def _chain(cluster: Cluster, blocks: list[tuple[tuple, tuple]]) -> list[Ledger]:  # type: ignore[type-arg]
    """Ledgers after carry-over blocks carrying (proposals, approvals), one per height."""
    ledgers = [genesis_ledger(cluster.genesis)]
    for i, (proposals, approvals) in enumerate(blocks, start=1):
        block = cluster.carry_over(height=i, ledger=ledgers[-1])
        block = replace(block, proposals=proposals, approvals=approvals)
        assert block_governance_problem(CHAIN, ledgers[-1], block, cluster.verifier) is None
        ledgers.append(apply_block(ledgers[-1], block))
    return ledgers


def test_an_approved_change_switches_the_set_at_a_fixed_distance() -> None:
    """Approvals of > 2/3 of the power carried at height 2 make the set of height 2 + DELAY
    the new one; heights before keep the old set; the joiner gets an empty ledger record."""
    cluster, (new,) = _cluster()
    change = MemberChange(CHANGE_ADD, "joiner", _info(new, "joiner", "peer-j"))
    proposal = _propose(cluster, change, 0)
    pid = proposal_id(proposal)
    ledgers = _chain(
        cluster,
        [
            ((proposal,), (_approve(cluster, pid, 1),)),  # 2 of 4: pending
            ((), (_approve(cluster, pid, 2),)),  # 3 of 4 > 2/3 at height 2
            ((), ()),
            ((), ()),
        ],
    )
    assert [p.approvers for p in ledgers[1].pending] == [(0, 1)]
    assert ledgers[2].pending == () and ledgers[2].scheduled[0].activation == 2 + GOVERNANCE_DELAY
    sizes = [len(next_members(ledger)) for ledger in ledgers]  # the set of heights 1..5
    assert sizes == [4, 4, 4, 5, 5]
    assert len(ledgers[3].members) == 4 and len(ledgers[4].members) == 5
    assert len(ledgers[4].participants) == 5 and ledgers[4].participants[4] == ParticipantRecord()


def test_remove_power_and_rotate_apply_and_keep_indices() -> None:
    cluster, (new,) = _cluster()
    members = cluster.genesis.validators
    for change, check in (
        (
            MemberChange(CHANGE_REMOVE, members[3].name),
            lambda m: m[3].roles == () and m[3].power == 0,
        ),
        (MemberChange(CHANGE_POWER, members[1].name, power=5), lambda m: m[1].power == 5),
        (
            MemberChange(
                CHANGE_ROTATE, members[2].name, replace(_info(new, members[2].name, "peer-r"))
            ),
            lambda m: m[2].public_key == new.public_key and m[2].peer_id == "peer-r",
        ),
    ):
        proposal = _propose(cluster, change, 0)
        pid = proposal_id(proposal)
        approvals = (_approve(cluster, pid, 1), _approve(cluster, pid, 2))
        ledgers = _chain(cluster, [((proposal,), approvals), ((), ()), ((), ())])
        after = next_members(ledgers[2])
        assert len(after) == 4 and check(after), change.kind
        assert next_members(ledgers[1]) == members


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        ("unknown-target", "is not a current member"),
        ("bad-pop", "proof of possession"),
        ("duplicate-key", "BLS key of"),
        ("duplicate-peer", "peer id of"),
        ("duplicate-name", "already used"),
        ("last-validator", "no validator with power"),
        ("bad-signature", "signature of member 0 does not verify"),
        ("non-member", "not a current member"),
        ("bad-power", "from 1 to"),
    ],
)
def test_bad_proposals_are_refused_with_one_sentence(mutate: str, needle: str) -> None:
    cluster, (new,) = _cluster()
    members = cluster.genesis.validators
    ledger = genesis_ledger(cluster.genesis)
    good_new = _info(new, "joiner", "peer-j")
    change = MemberChange(CHANGE_ADD, "joiner", good_new)
    by = 0
    if mutate == "unknown-target":
        change = MemberChange(CHANGE_REMOVE, "nobody")
    elif mutate == "bad-pop":
        change = replace(change, member=replace(good_new, proof_of_possession=new.sign(b"x")))
    elif mutate == "duplicate-key":
        change = replace(change, member=replace(good_new, public_key=members[1].public_key))
    elif mutate == "duplicate-peer":
        change = replace(change, member=replace(good_new, peer_id=members[1].peer_id))
    elif mutate == "duplicate-name":
        change = MemberChange(CHANGE_ADD, members[1].name, replace(good_new, name=members[1].name))
    elif mutate == "bad-power":
        change = MemberChange(CHANGE_POWER, members[1].name, power=0)
    proposal = _propose(cluster, change, by)
    if mutate == "last-validator":
        # one validator with power, three trainers: removing it would leave nobody to vote
        solo = make_cluster(2, powers=[1, 0], roles=[ROLES, (ROLE_TRAINER,)])
        proposal = _propose(solo, MemberChange(CHANGE_REMOVE, solo.genesis.validators[0].name), 1)
        ledger, members, verifier = (
            genesis_ledger(solo.genesis),
            solo.genesis.validators,
            solo.verifier,
        )
    else:
        verifier = cluster.verifier
    if mutate == "bad-signature":
        proposal = replace(proposal, signature=cluster.signers[1].sign(b"other"))
    if mutate == "non-member":
        proposal = replace(proposal, proposer=ValidatorIndex(9))
    problem = proposal_problem(CHAIN, ledger, members, proposal, 1, verifier)
    assert problem is not None and needle in problem and "\n" not in problem, problem


def test_bad_approvals_are_refused() -> None:
    cluster, (new,) = _cluster()
    members = cluster.genesis.validators
    proposal = _propose(cluster, MemberChange(CHANGE_ADD, "j", _info(new, "j", "p")), 0)
    pid = proposal_id(proposal)
    (ledger,) = _chain(cluster, [((proposal,), ())])[1:]
    verifier = cluster.verifier
    cases = {
        "not pending": _approve(cluster, Hash(bytes(32)), 1),
        "already approved": _approve(cluster, pid, 0),
        "does not verify": replace(
            _approve(cluster, pid, 1), signature=cluster.signers[2].sign(b"x")
        ),
        "not a current member": replace(_approve(cluster, pid, 1), approver=ValidatorIndex(7)),
    }
    for needle, approval in cases.items():
        problem = approval_problem(CHAIN, ledger, members, approval, verifier)
        assert problem is not None and needle in problem, (needle, problem)
    assert approval_problem(CHAIN, ledger, members, _approve(cluster, pid, 1), verifier) is None
    # a block carrying a bad one is invalid
    block = replace(cluster.carry_over(height=2, ledger=ledger), approvals=(cases["not pending"],))
    assert block_governance_problem(CHAIN, ledger, block, verifier) is not None


def test_core_refuses_a_gossiped_bad_proposal_and_pools_a_good_one() -> None:
    cluster, (new,) = _cluster()
    core = cluster.core(1)
    good = _propose(cluster, MemberChange(CHANGE_ADD, "j", _info(new, "j", "p")), 0)
    bad = replace(good, signature=cluster.signers[2].sign(b"x"))
    from consensus.events import GovernanceReceived

    out = core.handle(GovernanceReceived(bad), 0.0)
    assert [a.reason for a in out if isinstance(a, Rejected)] == ["governance-invalid"]
    assert core.handle(GovernanceReceived(good), 0.0) == [] and len(core.governance) == 1


def _instant(cluster: Cluster, cores: list[ConsensusCore], max_height: int) -> InstantNet:
    net = InstantNet(cluster, cores, max_height=max_height)

    def perform(node: int, request, original=net._perform) -> None:  # type: ignore[no-untyped-def]
        if isinstance(request, Publish) and request.topic == GOVERNANCE:
            tx, now = request.message, net.now
            for dst in range(len(net.cores)):
                if dst != node:
                    net.queue.append((dst, lambda s, t=tx: s.deliver_governance(t, now)))
            return
        original(node, request)

    net._perform = perform  # type: ignore[method-assign]
    return net


def _propose_and_approve(net: InstantNet, change: MemberChange, approvers: tuple[int, ...]) -> None:
    """Member 0 proposes before block 1; once every node has the proposal, `approvers`
    approve it (operators approve what `bcfl member list` shows them)."""
    net.queue.append((0, GovernanceRequested(change=change)))
    net.run()
    pid = proposal_id(GovernanceProposal(change, Height(0), ValidatorIndex(0)))
    for i in approvers:
        net.queue.append((i, GovernanceRequested(approve=pid)))
    net.run()


def test_rotation_old_key_refused_new_key_counts() -> None:
    """After member 3 rotates its BLS key, its vote signed with the old key is refused and its
    vote with the new key is admitted and verifies inside a commit certificate; the running
    chain keeps committing with member 3 signing under the new key."""
    signers = [BlsSigner(hashlib.sha256(b"rot-%d" % i).digest()) for i in range(4)]
    new = BlsSigner(hashlib.sha256(b"rot-new").digest())
    genesis = make_genesis(CHAIN, signers, initial_model_hash=hashlib.sha256(b"m").digest())
    verifier = BlsVerifier()
    cluster = Cluster(genesis, signers, verifier)  # type: ignore[arg-type]
    cores = [
        ConsensusCore(
            genesis,
            verifier=verifier,
            me=ValidatorIndex(i),
            signer=signers[i],
            next_signers=(new,) if i == 3 else (),
        )
        for i in range(4)
    ]
    old = genesis.validators[3]
    change = MemberChange(
        CHANGE_ROTATE,
        old.name,
        replace(old, public_key=new.public_key, proof_of_possession=new.prove_possession()),
    )
    net = _instant(cluster, cores, max_height=5)
    _propose_and_approve(net, change, approvers=(1, 2))
    net.start()
    assert all(core.height > 5 for core in cores)
    activation = 1 + GOVERNANCE_DELAY  # all approvals in block 1
    commits = net.commits[0]
    assert bytes(commits[activation - 1].ledger.members[3].public_key) == bytes(new.public_key)
    core = cores[0]
    # member 3 kept voting after the rotation, and its votes verify under the new key
    votes = [
        r.message
        for n, r in net.log
        if n == 3 and isinstance(r, Publish) and isinstance(r.message, Vote)
    ]
    later = [v for v in votes if v.height >= activation]
    assert later and all(core.admission.vote(v) is None for v in later)
    assert all(core.admission.vote(v) == "bad-signature" for v in votes if v.height < activation)

    h, block_hash = Height(core.height), Hash(hashlib.sha256(b"b").digest())

    def precommit(signer: BlsSigner, who: int) -> Vote:
        vote = Vote(VoteType.PRECOMMIT, h, Round(0), block_hash, ValidatorIndex(who))
        return replace(vote, signature=signer.sign(vote_bytes(CHAIN, vote)))

    assert core.admission.vote(precommit(signers[3], 3)) == "bad-signature"
    assert core.admission.vote(precommit(new, 3)) is None
    message = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, h, Round(0), block_hash)
    vset = core.validator_set

    def certificate(key3: BlsSigner) -> CommitCertificate:
        sigs = [signers[0].sign(message), signers[1].sign(message), key3.sign(message)]
        return CommitCertificate(
            h, Round(0), block_hash, vset.bitfield([0, 1, 3]), verifier.aggregate(sigs)
        )

    assert core.checker.commit_certificate_problem(certificate(new)) is None
    assert core.checker.commit_certificate_problem(certificate(signers[3])) == (
        "commit certificate signature does not verify"
    )


def test_joiner_syncs_in_and_votes_after_activation() -> None:
    """A node outside the genesis follows the chain, finds its index when governance adds it,
    and signs commit certificates from the activation height on."""
    cluster, (new,) = _cluster()
    cores = [cluster.core(i) for i in range(4)]
    cores.append(ConsensusCore(cluster.genesis, verifier=cluster.verifier, signer=new))
    change = MemberChange(CHANGE_ADD, "joiner", _info(new, "joiner", "peer-j"))
    net = _instant(cluster, cores, max_height=5)
    _propose_and_approve(net, change, approvers=(1, 2))
    net.start()
    assert cores[4].me == 4
    hashes = {i: [hash_of(c.block) for c in net.commits[i]] for i in range(5)}
    assert all(hashes[i] == hashes[0] for i in range(5)) and len(hashes[0]) >= 5
    activation = 1 + GOVERNANCE_DELAY
    votes = [
        r.message
        for n, r in net.log
        if n == 4 and isinstance(r, Publish) and isinstance(r.message, Vote)
    ]
    assert votes and min(v.height for v in votes) == activation
    assert all(cores[0].admission.vote(v) is None for v in votes)
    for commit in net.commits[0]:
        assert len(commit.ledger.members) == (5 if commit.block.height >= activation else 4)
        signers = ValidatorSet(commit.ledger.members).indices(commit.commit_certificate.signers)
        assert signers is not None and (4 not in signers or commit.block.height >= activation)


def test_expected_trainers_drop_a_silent_trainer_after_a_few_heights() -> None:
    members = make_cluster(4).genesis.validators
    ledger = Ledger(
        height=Height(9),
        model_hash=Hash(bytes(32)),
        participants=tuple(ParticipantRecord(last_update_height=h) for h in (9, 8, 7, 2)),
        members=members,
    )
    assert expected_trainers(4, 4, members, ledger, 2) == 4  # first heights: everyone
    assert expected_trainers(4, 4, members, ledger, 10) == 3  # member 3 silent since height 2
    assert expected_trainers(3, 4, members, ledger, 10) == 2  # the genesis slack is kept
    silent = replace(ledger, participants=(ParticipantRecord(),) * 4)
    assert expected_trainers(4, 4, members, silent, 10) == 4  # nobody recent: everyone
