"""Forged signatures that reach the core: the direct transport leaves the signatures of
receipts, attestations and votes to the core's batch checks (node/gossip_validation.py), so
the core must drop a forgery on its own. Each test shows the forged member's part missing
from what commits, while the chain goes on."""

from __future__ import annotations

from dataclasses import replace

from consensus_harness import InstantNet, make_cluster

from consensus.types import Attestation, Signature, UpdateReceipt, Vote, VoteType

FORGER = 1


def forge(kind: type, src: int = FORGER):  # type: ignore[no-untyped-def]
    """What the others get from `src`: its messages of `kind` under another's signature."""

    def tamper(node: int, message: object) -> object:
        if node == src and isinstance(message, kind):
            other = (src + 1) % 4
            return replace(message, signature=Signature(b"forged-by-%d" % other))
        return message

    return tamper


def run(tamper):  # type: ignore[no-untyped-def]
    cluster = make_cluster(4)
    cores = [cluster.core(i) for i in range(4)]
    net = InstantNet(cluster, cores, tamper=tamper)
    net.start()
    return cores, net


def test_a_forged_receipt_is_left_out_of_every_other_proposers_block() -> None:
    cores, net = run(lambda node, m: m)
    honest = [c.block for c in net.commits[0]]
    assert all(FORGER in {int(r.author) for r in b.receipts} for b in honest)

    cores, net = run(forge(UpdateReceipt))
    blocks = [c.block for c in net.commits[0]]
    assert len(blocks) == 3 and all(not b.is_carry_over for b in blocks)
    for block in blocks:
        authors = {int(r.author) for r in block.receipts}
        if int(block.header.proposer) != FORGER:  # the forger holds its own real receipt
            assert FORGER not in authors
        assert len(authors) >= 3


def test_a_forged_attestation_does_not_count_towards_the_certificate() -> None:
    cores, net = run(lambda node, m: m)
    blocks = [c.block for c in net.commits[0]]
    assert any(FORGER in {int(r.evaluator) for r in b.eval_reports} for b in blocks)

    cores, net = run(forge(Attestation))
    blocks = [c.block for c in net.commits[0]]
    assert len(blocks) == 3 and all(not b.is_carry_over for b in blocks)
    for block in blocks:
        if int(block.header.proposer) != FORGER:
            assert FORGER not in {int(r.evaluator) for r in block.eval_reports}


def test_forged_votes_do_not_make_a_quorum() -> None:
    """Two of four members' precommits forged: the two honest precommits are not > 2/3, so
    nothing commits; forging one leaves three, and blocks commit."""

    def two(node: int, message: object) -> object:
        if node in (1, 2) and isinstance(message, Vote) and message.vote_type == VoteType.PRECOMMIT:
            return replace(message, signature=Signature(b"forged"))
        return message

    _, net = run(two)
    assert all(net.commits[i] == [] for i in (0, 3))
    _, net = run(forge(Vote))
    assert len(net.commits[0]) == 3
