"""Canonical CBOR: round trips, byte stability, strict schema checks, fuzzed decoding."""

from __future__ import annotations

import contextlib
import dataclasses

import cbor2
import pytest
from consensus_harness import InstantNet, make_cluster
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import bounds, codec
from consensus.codec import InvalidMessage, decode, decode_message, encode, encode_message
from consensus.guard import SignerState
from consensus.shell import Publish, StoreCommit
from consensus.types import (
    EvalReport,
    Hash,
    Height,
    Round,
    Signature,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
    VoteType,
)

hashes = st.binary(min_size=32, max_size=32).map(Hash)
sigs = st.binary(min_size=96, max_size=96).map(Signature)
small = st.integers(min_value=0, max_value=2**40)
members = st.integers(min_value=0, max_value=bounds.MAX_MEMBERS - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)

votes = st.builds(
    Vote,
    vote_type=st.sampled_from(list(VoteType)),
    height=small.map(Height),
    round=st.integers(min_value=0, max_value=bounds.MAX_ROUND).map(Round),
    block_hash=st.none() | hashes,
    validator=members.map(ValidatorIndex),
    signature=sigs,
)
receipts = st.builds(
    UpdateReceipt,
    author=members.map(ValidatorIndex),
    height=small.map(Height),
    base_model_hash=hashes,
    blob_hash=hashes,
    n_samples=small,
    train_loss=floats,
    epsilon_spent=floats,
    signature=sigs,
)
reports = st.builds(
    EvalReport,
    evaluator=members.map(ValidatorIndex),
    candidate_hash=hashes,
    n_samples=small,
    loss_before=floats,
    loss_after=floats,
    metric_before=floats,
    metric_after=floats,
    metric_name=st.sampled_from(["loss", "auc", "accuracy", "mae"]),
)


@pytest.fixture(scope="module")
def chain_messages() -> list[object]:
    """Every wire message a short real run produced, plus its blocks and certificates."""
    cluster = make_cluster(4)
    net = InstantNet(cluster, [cluster.core(i) for i in range(4)], max_height=2)
    net.start()
    messages: list[object] = [r.message for _, r in net.log if isinstance(r, Publish)]
    for _, request in net.log:
        if isinstance(request, StoreCommit):
            commit = request.commit
            messages += [commit.block, commit.commit_certificate, commit.ledger]
    messages.append(cluster.genesis)
    return messages


def test_every_chain_message_round_trips(chain_messages) -> None:  # type: ignore[no-untyped-def]
    """decode(encode(x)) == x and encoding twice gives the same bytes, for every type."""
    kinds = set()
    for msg in chain_messages:
        data = encode(msg)
        assert decode(data) == msg
        assert encode(decode(data)) == data
        kinds.add(type(msg).__name__)
    assert {"Proposal", "Vote", "UpdateReceipt", "Candidate", "Attestation", "Block"} <= kinds


@given(votes)
def test_vote_round_trip(vote: Vote) -> None:
    """Arbitrary votes round-trip through the wire codec."""
    assert decode_message(encode_message(vote)) == vote


@given(receipts, reports)
def test_receipt_and_report_round_trip(receipt: UpdateReceipt, report: EvalReport) -> None:
    """Floats keep their exact value; encodings are stable."""
    assert decode_message(encode_message(receipt)) == receipt
    assert decode_message(encode_message(report)) == report
    assert encode_message(receipt) == encode_message(decode_message(encode_message(receipt)))


def test_report_without_metric_name_is_refused() -> None:
    """The codec stays strict: an eval report from before `metric_name` does not decode."""
    import cbor2

    report = EvalReport(ValidatorIndex(1), Hash(bytes(32)), 5, 0.5, 0.4, 0.5, 0.4, "loss")
    tag, fields = cbor2.loads(encode_message(report))
    del fields["metric_name"]
    with pytest.raises(InvalidMessage, match="missing fields \\['metric_name'\\]"):
        decode_message(cbor2.dumps([tag, fields], canonical=True))


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_invalid_message(data: bytes) -> None:
    """Fuzz: garbage never raises anything but InvalidMessage."""
    try:
        decode_message(data)
    except InvalidMessage as exc:
        assert exc.reason


@settings(max_examples=300)
@given(st.data())
def test_mutated_valid_messages_raise_only_invalid_message(data) -> None:  # type: ignore[no-untyped-def]
    """Fuzz: a valid encoding with bytes flipped, cut or inserted decodes or is refused cleanly."""
    vote = data.draw(votes)
    raw = bytearray(encode_message(vote))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if op == "flip":
        raw[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    elif op == "cut":
        del raw[pos:]
    else:
        raw.insert(pos, data.draw(st.integers(min_value=0, max_value=255)))
    try:
        out = decode_message(bytes(raw))
    except InvalidMessage:
        return
    assert encode_message(out) == bytes(raw)


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=5), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_cbor_values_raise_only_invalid_message(value: object) -> None:
    """Fuzz: well-formed CBOR of the wrong shape, with and without a real tag."""
    for wrapped in (value, ["vote", value], ["block", value], ["genesis", value]):
        with contextlib.suppress(InvalidMessage):
            decode(cbor2.dumps(wrapped, canonical=True))


def body_of(vote: Vote) -> dict:  # type: ignore[type-arg]
    return cbor2.loads(encode_message(vote))[1]


VOTE = Vote(VoteType.PREVOTE, Height(3), Round(1), None, ValidatorIndex(2), Signature(b"\x01" * 96))


def reencode(body: dict, tag: str = "vote") -> bytes:  # type: ignore[type-arg]
    return cbor2.dumps([tag, body], canonical=True)


def test_unknown_field_is_rejected_with_its_name() -> None:
    """An extra field is refused, and the reason names it."""
    body = body_of(VOTE) | {"extra": 1}
    with pytest.raises(InvalidMessage, match="unknown fields \\['extra'\\]"):
        decode_message(reencode(body))


def test_missing_field_is_rejected_with_its_name() -> None:
    """A missing field is refused, and the reason names it."""
    body = body_of(VOTE)
    del body["round"]
    with pytest.raises(InvalidMessage, match="missing fields \\['round'\\]"):
        decode_message(reencode(body))


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("round", "1", "expected an integer"),
        ("round", True, "expected an integer"),
        ("round", 2**70, "out of range"),
        ("signature", b"\x01" * 95, "expected 96 bytes"),
        ("block_hash", b"\x01" * 31, "expected 32 bytes"),
        ("vote_type", 9, "unknown VoteType"),
    ],
)
def test_wrong_types_and_sizes_are_rejected(field: str, value: object, reason: str) -> None:
    """Exact types, fixed lengths, bounded integers, known enum values."""
    body = body_of(VOTE) | {field: value}
    with pytest.raises(InvalidMessage, match=reason):
        decode_message(reencode(body))


def test_non_canonical_encoding_is_rejected() -> None:
    """The same vote encoded non-canonically (a long-form integer) is refused."""
    body = body_of(VOTE)
    data = cbor2.dumps(["vote", body], canonical=False)
    data_long = data.replace(b"\x65round\x01", b"\x65round\x18\x01")
    assert data_long != data
    with pytest.raises(InvalidMessage, match="canonical"):
        decode_message(data_long)


def test_non_finite_floats_are_rejected() -> None:
    """NaN would break decode(encode(x)) == x and is never a statistic."""
    receipt = UpdateReceipt(
        ValidatorIndex(0),
        Height(1),
        Hash(bytes(32)),
        Hash(bytes(32)),
        5,
        0.5,
        0.0,
        Signature(bytes(96)),
    )
    body = cbor2.loads(encode_message(receipt))[1] | {"train_loss": float("nan")}
    with pytest.raises(InvalidMessage, match="non-finite"):
        decode_message(reencode(body, "receipt"))


def test_size_limit_is_checked_first() -> None:
    """An oversized message is refused before decoding."""
    with pytest.raises(InvalidMessage, match="exceeds the limit"):
        decode_message(encode_message(VOTE), max_size=10)


def test_wire_decoder_refuses_non_wire_types() -> None:
    """decode_message accepts gossip types only (not a signer state, say)."""
    with pytest.raises(InvalidMessage, match="unexpected message type"):
        decode_message(encode(SignerState()))
    assert decode(encode(SignerState(height=3, attested=((b"x", True),)))) == SignerState(
        height=3, attested=((b"x", True),)
    )


def test_hashes_are_sha256_of_canonical_bytes(chain_messages) -> None:  # type: ignore[no-untyped-def]
    """block_hash is SHA-256 of the block's canonical encoding."""
    import hashlib

    from consensus.types import Block

    block = next(m for m in chain_messages if isinstance(m, Block))
    assert codec.block_hash(block) == hashlib.sha256(encode(block)).digest()


@pytest.mark.parametrize(
    ("field", "value"),
    [("height", bounds.MAX_HEIGHT + 1), ("round", -2), ("validator", bounds.MAX_MEMBERS)],
)
def test_domain_integers_outside_their_bounds_are_refused(field: str, value: int) -> None:
    """A height, round or member index outside its domain bound does not decode."""
    vote = Vote(
        VoteType.PREVOTE, Height(1), Round(0), None, ValidatorIndex(0), Signature(bytes(96))
    )
    raw = cbor2.loads(encode(vote))
    raw[1][field] = value
    with pytest.raises(InvalidMessage, match="out of range"):
        decode(codec.canonical(raw))


def test_a_block_time_that_leaves_no_successor_does_not_decode() -> None:
    """2^64 - 1 ms (the halt-by-timestamp stamp) is above MAX_TIME_MS and refused."""
    from consensus.types import Header

    header = Header(
        "c",
        Height(1),
        Round(0),
        1,
        Hash(bytes(32)),
        ValidatorIndex(0),
        Hash(bytes(32)),
        Hash(bytes(32)),
        Hash(bytes(32)),
        Hash(bytes(32)),
    )
    raw = cbor2.loads(encode(header))
    raw[1]["time_ms"] = 2**64 - 1
    with pytest.raises(InvalidMessage, match="time_ms: integer out of range"):
        decode(codec.canonical(raw))


def test_ids_are_computed_once_per_object_and_never_shared_by_equal_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """receipt_hash is memoized by identity: a second call on the same object does not encode
    again, and an equal receipt that encodes differently (-0.0 == 0.0) still gets its own id."""
    calls: list[object] = []
    real = codec.hash_of

    def counting(obj: object) -> Hash:
        calls.append(obj)
        return real(obj)

    monkeypatch.setattr(codec, "hash_of", counting)
    receipt = UpdateReceipt(
        author=ValidatorIndex(1),
        height=Height(3),
        base_model_hash=Hash(bytes(32)),
        blob_hash=Hash(b"\x01" * 32),
        n_samples=10,
        train_loss=0.0,
        epsilon_spent=0.0,
        signature=Signature(b"\x02" * 96),
    )
    first = codec.receipt_hash(receipt)
    assert codec.receipt_hash(receipt) == first
    assert calls == [receipt]
    negative = dataclasses.replace(receipt, train_loss=-0.0)
    assert negative == receipt  # equal values ...
    assert codec.receipt_hash(negative) != first  # ... different bytes, different ids
    assert codec.receipt_hash(negative) == real(negative)
    assert len(calls) == 2
