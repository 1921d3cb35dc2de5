"""GossipValidator: every rejection reason, acceptance per topic, caches and the replay rule."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import cbor2
import pytest

from consensus import admission
from consensus.codec import block_hash, canonical, encode, encode_message
from consensus.crypto import BlsSigner, BlsVerifier
from consensus.genesis import make_genesis
from consensus.signing import (
    attestation_bytes,
    candidate_bytes,
    proposal_bytes,
    receipt_bytes,
    report_bytes,
    vote_bytes,
)
from consensus.types import (
    Attestation,
    Block,
    Candidate,
    EvalReport,
    Genesis,
    Hash,
    Header,
    Height,
    Proposal,
    Round,
    Signature,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet
from node.gossip_validation import ADMISSION_REASONS, GossipValidator
from node.network.topics import DEFAULT_SIZE_CAPS, Topic
from telemetry.labels import GOSSIP_REJECT_REASONS

CHAIN = "unit-chain"
PEERS = ["peer-a", "peer-b", "peer-c", "peer-observer"]
H = Hash(b"\x11" * 32)


@pytest.fixture(scope="module")
def signers() -> list[BlsSigner]:
    return [BlsSigner(bytes([i + 1]) * 32) for i in range(4)]


@pytest.fixture(scope="module")
def genesis(signers: list[BlsSigner]) -> Genesis:
    roles = [("trainer", "validator")] * 3 + [("observer",)]
    return make_genesis(CHAIN, signers, roles=roles, peer_ids=PEERS)


class CountingVerifier(BlsVerifier):
    """A BlsVerifier that counts single-signature verifications."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        self.calls += 1
        return super().verify(public_key, message, signature)


class Height_:
    """A settable current height."""

    def __init__(self, value: int = 5) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


@pytest.fixture
def height() -> Height_:
    return Height_()


@pytest.fixture
def gv(genesis: Genesis, height: Height_) -> GossipValidator:
    return GossipValidator(genesis, CountingVerifier(), height, local_peer_id="peer-me")


def vote(signers: list[BlsSigner], who: int = 0, h: int = 5, **kw: Any) -> Vote:
    v = Vote(VoteType.PREVOTE, Height(h), Round(0), H, ValidatorIndex(who))
    v = dataclasses.replace(v, **kw)
    if "signature" in kw:
        return v
    return dataclasses.replace(v, signature=signers[who].sign(vote_bytes(CHAIN, v)))


def block(h: int = 5, chain: str = CHAIN, proposer: int = 0, time_ms: int = 1) -> Block:
    header = Header(
        chain_id=chain,
        height=Height(h),
        round=Round(0),
        time_ms=time_ms,
        parent_hash=H,
        proposer=ValidatorIndex(proposer),
        model_hash=H,
        updates_root=H,
        last_commit_hash=H,
        ledger_root=H,
    )
    return Block(header, (), (), "", None, (), "no updates", None, ())


def proposal(signers: list[BlsSigner], genesis: Genesis, h: int = 5, **kw: Any) -> Proposal:
    who = ValidatorSet(genesis.validators).proposer_for(Height(h), Round(0))
    p = Proposal(Height(h), Round(0), kw.pop("block", block(h)), Round(-1), who)
    p = dataclasses.replace(p, **kw)
    sig = signers[p.proposer].sign(proposal_bytes(CHAIN, p, block_hash(p.block)))
    return dataclasses.replace(p, signature=sig)


def receipt(signers: list[BlsSigner], who: int = 1, h: int = 5) -> UpdateReceipt:
    r = UpdateReceipt(ValidatorIndex(who), Height(h), H, H, 100, 0.5, 0.0)
    return dataclasses.replace(r, signature=signers[who].sign(receipt_bytes(CHAIN, r)))


def candidate(signers: list[BlsSigner], who: int = 2, h: int = 5) -> Candidate:
    c = Candidate(Height(h), Round(0), ValidatorIndex(who), H, H, (receipt(signers),), (), "fedavg")
    return dataclasses.replace(c, signature=signers[who].sign(candidate_bytes(CHAIN, c)))


def attestation(signers: list[BlsSigner], who: int = 1, h: int = 5, **kw: Any) -> Attestation:
    report = kw.pop("report", EvalReport(ValidatorIndex(who), H, 50, 0.7, 0.6, 0.8, 0.85))
    report = dataclasses.replace(
        report, signature=signers[report.evaluator].sign(report_bytes(CHAIN, report))
    )
    a = Attestation(Height(h), H, True, ValidatorIndex(who), report)
    return dataclasses.replace(a, signature=signers[who].sign(attestation_bytes(CHAIN, a)))


# -- acceptance ---------------------------------------------------------------------------


def test_every_topic_accepts_its_well_signed_message(
    gv: GossipValidator, signers: list[BlsSigner], genesis: Genesis
) -> None:
    """A valid message of each topic's type is accepted and returned decoded."""
    cases: list[tuple[Topic, Any]] = [
        (Topic.CONSENSUS, vote(signers)),
        (Topic.CONSENSUS, proposal(signers, genesis)),
        (Topic.RECEIPTS, receipt(signers)),
        (Topic.CANDIDATES, candidate(signers)),
        (Topic.ATTESTATIONS, attestation(signers)),
    ]
    for topic, msg in cases:
        assert gv.check(topic, encode_message(msg), "peer-x") == (msg, None)


# -- one test per reason --------------------------------------------------------------------


def test_oversized(gv: GossipValidator, signers: list[BlsSigner]) -> None:
    """Bytes above the topic cap are rejected before decoding."""
    data = b"\x00" * (DEFAULT_SIZE_CAPS[Topic.RECEIPTS] + 1)
    assert gv.check(Topic.RECEIPTS, data) == (None, "oversized")
    assert gv.check(Topic.CONSENSUS, encode_message(vote(signers)))[1] is None


@pytest.mark.parametrize(
    "data", [b"\xff" * 9, b"\x9f\x01\x02", b"", b"\x1c", b"\x5a\x00\x00\x10\x00ab"]
)
def test_undecodable(gv: GossipValidator, data: bytes) -> None:
    """Bytes that are not CBOR are undecodable."""
    assert gv.check(Topic.CONSENSUS, data) == (None, "undecodable")


@pytest.mark.parametrize(
    "data",
    [
        canonical(["no-such-tag", {}]),
        canonical(["vote", {"height": 1}]),
        canonical([1, 2, 3]),
        canonical({"vote": 1}),
        cbor2.dumps(["eval_report", {}], canonical=False),
    ],
)
def test_schema_of_wrong_shapes(gv: GossipValidator, data: bytes) -> None:
    """Valid CBOR with an unknown tag, missing fields or the wrong shape is a schema error."""
    assert gv.check(Topic.CONSENSUS, data) == (None, "schema")


def test_schema_of_non_canonical_encoding(gv: GossipValidator, signers: list[BlsSigner]) -> None:
    """A valid vote re-encoded non-canonically (map keys unsorted) is a schema error."""
    body = cbor2.loads(encode_message(vote(signers)))
    body[1] = dict(reversed(list(body[1].items())))
    assert gv.check(Topic.CONSENSUS, cbor2.dumps(body)) == (None, "schema")


def test_schema_of_a_type_on_the_wrong_topic(gv: GossipValidator, signers: list[BlsSigner]) -> None:
    """A well-signed vote on the receipts topic, an eval report or a bare block are schema errors."""
    assert gv.check(Topic.RECEIPTS, encode_message(vote(signers))) == (None, "schema")
    report = EvalReport(ValidatorIndex(0), H, 1, 0.0, 0.0, 0.0, 0.0)
    assert gv.check(Topic.ATTESTATIONS, encode_message(report)) == (None, "schema")
    assert gv.check(Topic.CONSENSUS, encode(block())) == (None, "schema")


def test_bad_signature(gv: GossipValidator, signers: list[BlsSigner]) -> None:
    """A forged, borrowed or other-chain signature is bad-signature."""
    forged = vote(signers, signature=Signature(os.urandom(96)))
    borrowed = vote(signers, who=1, signature=vote(signers, who=0).signature)
    v = Vote(VoteType.PREVOTE, Height(5), Round(0), H, ValidatorIndex(2))
    other_chain = dataclasses.replace(v, signature=signers[2].sign(vote_bytes("other", v)))
    for msg in (forged, borrowed, other_chain):
        assert gv.check(Topic.CONSENSUS, encode_message(msg)) == (None, "bad-signature")


def test_unknown_signer(gv: GossipValidator, signers: list[BlsSigner]) -> None:
    """A non-member index, an observer voting, or an observer's receipt is unknown-signer; a
    negative index is outside the codec's bound for member indices (schema)."""
    outsider = vote(signers, who=0, validator=ValidatorIndex(99), signature=Signature(bytes(96)))
    negative = vote(signers, who=0, validator=ValidatorIndex(-1), signature=Signature(bytes(96)))
    observer_vote = vote(signers, who=3)
    assert gv.check(Topic.CONSENSUS, encode_message(outsider)) == (None, "unknown-signer")
    assert gv.check(Topic.CONSENSUS, encode_message(negative)) == (None, "schema")
    assert gv.check(Topic.CONSENSUS, encode_message(observer_vote)) == (None, "unknown-signer")
    assert gv.check(Topic.RECEIPTS, encode_message(receipt(signers, who=3))) == (
        None,
        "unknown-signer",
    )


def test_wrong_chain(gv: GossipValidator, signers: list[BlsSigner], genesis: Genesis) -> None:
    """A proposal whose block header names another chain is wrong-chain."""
    p = proposal(signers, genesis, block=block(chain="other-chain"))
    assert gv.check(Topic.CONSENSUS, encode_message(p)) == (None, "wrong-chain")


def test_height_window(gv: GossipValidator, signers: list[BlsSigner], height: Height_) -> None:
    """Heights current-1 .. current+8 pass; outside is height-window, re-checked as height moves."""
    assert gv.check(Topic.CONSENSUS, encode_message(vote(signers, h=4)))[1] is None
    assert gv.check(Topic.CONSENSUS, encode_message(vote(signers, h=13)))[1] is None
    early = encode_message(vote(signers, h=14))
    assert gv.check(Topic.CONSENSUS, early) == (None, "height-window")
    assert gv.check(Topic.CONSENSUS, encode_message(vote(signers, h=3))) == (None, "height-window")
    assert gv.check(Topic.RECEIPTS, encode_message(receipt(signers, h=2**40)))[1] == "height-window"
    height.value = 6
    assert gv.check(Topic.CONSENSUS, early)[1] is None


def test_invalid(gv: GossipValidator, signers: list[BlsSigner], genesis: Genesis) -> None:
    """A proposal by the wrong proposer or an attestation with a foreign eval report is invalid."""
    p = proposal(signers, genesis)
    wrong = dataclasses.replace(p, proposer=ValidatorIndex((p.proposer + 1) % 3))
    assert gv.check(Topic.CONSENSUS, encode_message(wrong)) == (None, "invalid")
    report = EvalReport(ValidatorIndex(2), H, 50, 0.7, 0.6, 0.8, 0.85)
    a = attestation(signers, who=1, report=report)
    assert gv.check(Topic.ATTESTATIONS, encode_message(a)) == (None, "invalid")


def test_duplicate_is_a_replay_by_a_third_party(
    gv: GossipValidator, signers: list[BlsSigner]
) -> None:
    """Content already accepted is a duplicate from anyone but its author's peer or ourselves."""
    data = encode_message(vote(signers, who=1))
    assert gv.check(Topic.CONSENSUS, data, "peer-b")[1] is None
    assert gv.check(Topic.CONSENSUS, data, "peer-b")[1] is None  # the author's rebroadcast
    assert gv.check(Topic.CONSENSUS, data, "peer-me")[1] is None  # our own republish
    assert gv.check(Topic.CONSENSUS, data, "peer-c") == (None, "duplicate")


def test_every_reason_is_in_the_telemetry_enum() -> None:
    """The reasons this module can return are labels the metrics accept."""
    reasons = {"oversized", "undecodable", "schema", "bad-signature", "unknown-signer"}
    reasons |= {"wrong-chain", "height-window", "invalid", "duplicate"}
    assert reasons <= set(GOSSIP_REJECT_REASONS)


def test_every_admission_reason_maps_into_the_telemetry_enum() -> None:
    """Each consensus.admission code is counted under one closed gossip reason."""
    assert set(ADMISSION_REASONS) == set(admission.REASONS)
    assert set(ADMISSION_REASONS.values()) <= set(GOSSIP_REJECT_REASONS)


def test_admission_rules_the_core_applies_are_invalid_at_the_edge(
    gv: GossipValidator, signers: list[BlsSigner]
) -> None:
    """A candidate not from the round's proposer, an empty one, a receipt without samples."""
    good = candidate(signers)
    assert gv.check(Topic.CANDIDATES, encode_message(good))[1] is None
    not_proposer = dataclasses.replace(good, proposer=ValidatorIndex(0))
    not_proposer = dataclasses.replace(
        not_proposer, signature=signers[0].sign(candidate_bytes(CHAIN, not_proposer))
    )
    empty = dataclasses.replace(good, receipts=())
    empty = dataclasses.replace(empty, signature=signers[2].sign(candidate_bytes(CHAIN, empty)))
    r = dataclasses.replace(receipt(signers), n_samples=0)
    r = dataclasses.replace(r, signature=signers[1].sign(receipt_bytes(CHAIN, r)))
    assert gv.check(Topic.CANDIDATES, encode_message(not_proposer)) == (None, "invalid")
    assert gv.check(Topic.CANDIDATES, encode_message(empty)) == (None, "invalid")
    assert gv.check(Topic.RECEIPTS, encode_message(r)) == (None, "invalid")


def test_an_inflated_sample_count_is_counted_under_its_own_reason(
    gv: GossipValidator, signers: list[BlsSigner]
) -> None:
    """A receipt claiming 10^9 samples is dropped at the edge as `samples-over-cap`."""
    r = dataclasses.replace(receipt(signers), n_samples=10**9)
    r = dataclasses.replace(r, signature=signers[1].sign(receipt_bytes(CHAIN, r)))
    assert gv.check(Topic.RECEIPTS, encode_message(r)) == (None, "samples-over-cap")


# -- caches and wiring ----------------------------------------------------------------------


def test_verified_and_forged_messages_are_not_verified_twice(
    gv: GossipValidator, signers: list[BlsSigner]
) -> None:
    """A repeated valid or forged message costs no second signature verification."""
    verifier = gv.verifier
    assert isinstance(verifier, CountingVerifier)
    good = encode_message(vote(signers))
    forged = encode_message(vote(signers, who=1, signature=vote(signers).signature))
    for _ in range(3):
        assert gv.check(Topic.CONSENSUS, good)[1] is None
        assert gv.check(Topic.CONSENSUS, forged)[1] == "bad-signature"
    assert verifier.calls == 2


def test_decoded_returns_the_cached_message_and_rechecks_after_eviction(
    genesis: Genesis, signers: list[BlsSigner], height: Height_
) -> None:
    """decoded() gives the accepted message; evicted bytes are checked again, garbage is None."""
    gv = GossipValidator(genesis, BlsVerifier(), height, cache_size=1)
    first, second = vote(signers, who=0), vote(signers, who=1)
    assert gv.check(Topic.CONSENSUS, encode_message(first))[1] is None
    assert gv.decoded(Topic.CONSENSUS, encode_message(first)) is not None
    assert gv.check(Topic.CONSENSUS, encode_message(second))[1] is None  # evicts the first
    assert gv.decoded(Topic.CONSENSUS, encode_message(first)) == first
    assert gv.decoded(Topic.CONSENSUS, b"\xff") is None


def test_install_sets_a_validator_on_every_topic(
    gv: GossipValidator, signers: list[BlsSigner]
) -> None:
    """install() registers one validator per topic, and they reject and accept by topic."""
    installed: dict[Topic, Any] = {}

    class FakeNet:
        def set_validator(self, topic: Topic, fn: Any) -> None:
            installed[topic] = fn

    gv.install(FakeNet())
    assert set(installed) == set(Topic)
    data = encode_message(receipt(signers))
    # without secure aggregation nothing is relayed on its topic (the driver replaces this)
    assert installed[Topic.SECAGG](data, "peer-b") == "schema"
    assert installed[Topic.RECEIPTS](data, "peer-b") is None
    assert installed[Topic.CONSENSUS](data, "peer-b") == "schema"


# -- direct messages (node/network/direct.py) ----------------------------------------------


def test_a_direct_message_must_come_from_its_author(
    gv: GossipValidator, signers: list[BlsSigner]
) -> None:
    """Sent directly, a vote is accepted from its signer's peer only: a member that forwards
    another's message is refused as a replay, whether or not the bytes were seen before."""
    data = encode_message(vote(signers, who=0))
    assert gv.check(Topic.CONSENSUS, data, "peer-b", direct=True) == (None, "duplicate")
    assert gv.check(Topic.CONSENSUS, data, "peer-a", direct=True)[1] is None
    assert gv.check(Topic.CONSENSUS, data, "peer-b", direct=True) == (None, "duplicate")


def test_direct_votes_leave_their_signature_to_the_core_until_relayed(
    gv: GossipValidator, signers: list[BlsSigner]
) -> None:
    """The edge skips a direct vote's signature (the core batch-verifies votes); the same
    bytes arriving by gossip, to be relayed, are checked then, and a forgery is refused."""
    verifier = gv.verifier
    assert isinstance(verifier, CountingVerifier)
    forged = encode_message(vote(signers, who=0, signature=Signature(os.urandom(96))))
    assert gv.check(Topic.CONSENSUS, forged, "peer-a", direct=True)[1] is None
    assert verifier.calls == 0
    assert gv.check(Topic.CONSENSUS, forged, "peer-a") == (None, "bad-signature")
    assert verifier.calls == 1
    assert gv.check(Topic.CONSENSUS, forged, "peer-a", direct=True) == (None, "bad-signature")
    good = encode_message(vote(signers, who=1))
    assert gv.check(Topic.CONSENSUS, good, "peer-b", direct=True)[1] is None
    assert gv.check(Topic.CONSENSUS, good, "peer-b")[1] is None
    assert gv.check(Topic.CONSENSUS, good, "peer-b")[1] is None
    assert verifier.calls == 2  # checked once, when it first came to be relayed


def test_direct_proposals_are_still_verified_at_the_edge(
    gv: GossipValidator, signers: list[BlsSigner], genesis: Genesis
) -> None:
    """Proposals and candidates are not batch-verified by the core, so a direct one with a
    bad signature is refused here."""
    p = proposal(signers, genesis)
    forged = dataclasses.replace(p, signature=Signature(os.urandom(96)))
    author = PEERS[p.signer]
    assert gv.check(Topic.CONSENSUS, encode_message(forged), author, direct=True) == (
        None,
        "bad-signature",
    )
    assert gv.check(Topic.CONSENSUS, encode_message(p), author, direct=True)[1] is None
