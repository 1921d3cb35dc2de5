"""Late precommits (consensus/late_commit.py): the next block's last commit names the
validators whose precommit reached the proposer after the decision, and still verifies."""

from __future__ import annotations

from dataclasses import replace

from consensus_harness import CHAIN, InstantNet, make_cluster

from consensus.crypto import FakeSigner
from consensus.late_commit import LateCommit
from consensus.signing import vote_bytes, vote_sign_bytes
from consensus.types import CommitCertificate, Hash, Height, Round, ValidatorIndex, Vote, VoteType
from consensus.validators import ValidatorSet


def test_next_block_carries_the_precommits_that_came_after_the_decision() -> None:
    cluster = make_cluster(4)
    net = InstantNet(cluster, [cluster.core(i) for i in range(4)], max_height=3)
    net.start()
    vset = ValidatorSet(cluster.genesis.validators)
    decided = net.commits[0][0].commit_certificate  # height 1, as node 0 decided it
    carried = net.commits[0][1].block.last_commit  # height 1, as block 2 carries it
    assert carried is not None and carried.block_hash == decided.block_hash
    assert len(vset.indices(decided.signers) or []) == 3  # the first quorum
    assert vset.indices(carried.signers) == [0, 1, 2, 3]  # the late one added
    assert cluster.core(0).checker.commit_certificate_problem(carried) is None


def test_a_forged_or_foreign_late_precommit_is_not_added() -> None:
    cluster = make_cluster(4)
    vset = ValidatorSet(cluster.genesis.validators)
    block_hash = Hash(b"\x07" * 32)
    message = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, Height(1), Round(0), block_hash)
    signers = cluster.signers
    base = CommitCertificate(
        Height(1),
        Round(0),
        block_hash,
        vset.bitfield([0, 1, 2]),
        cluster.verifier.aggregate([s.sign(message) for s in signers[:3]]),
    )
    late = LateCommit(CHAIN, cluster.verifier)
    late.reset(base, vset)

    def precommit(signer: FakeSigner, who: int, value: Hash = block_hash) -> Vote:
        vote = Vote(VoteType.PRECOMMIT, Height(1), Round(0), value, ValidatorIndex(who))
        return replace(vote, signature=signer.sign(vote_bytes(CHAIN, vote)))

    late.add(precommit(signers[0], 3))  # member 3's slot, member 0's key
    late.add(precommit(signers[3], 3, Hash(b"\x08" * 32)))  # another block
    assert late.certificate() == base
    late.add(precommit(signers[3], 3))
    grown = late.certificate()
    assert grown is not None and vset.indices(grown.signers) == [0, 1, 2, 3]
    assert cluster.core(0).checker.commit_certificate_problem(grown) is None
