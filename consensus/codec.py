"""Canonical CBOR for everything the chain signs, hashes, stores or sends.

See docs/ARCHITECTURE.md "Wire and storage formats".

Encoding: `cbor2.dumps(..., canonical=True)` (RFC 8949 core deterministic encoding: shortest
integers and floats, map keys sorted). A top-level message is the array `[tag, {field: value}]`;
nested dataclasses are maps of their fields; tuples are arrays; enums are integers.

Decoding is strict, because every byte of it may come from a peer: a size limit first; then the
exact schema of the tagged type (no unknown or missing field, exact Python types, fixed lengths
for hashes, keys and signatures, bounded integers, finite floats); finally the input must be the
canonical encoding of what it decodes to, so one value has one encoding and one hash.
Anything else raises `InvalidMessage(reason)`, and nothing else is ever raised.

The chain's identities are here too, since each is a function of a canonical encoding: the
hashes (block, receipt, candidate, ledger root, ...) and the sign-bytes of every signed message.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import cbor2

from consensus.bounds import FIELD_BOUNDS, NEWTYPE_BOUNDS
from consensus.guard import SignerState
from consensus.memo import IdentityMemo
from consensus.types import (
    HASH_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Attestation,
    Block,
    Candidate,
    CommitCertificate,
    DuplicateVoteEvidence,
    EvalReport,
    Genesis,
    GovernanceApproval,
    GovernanceProposal,
    Hash,
    Header,
    ImprovementCertificate,
    Ledger,
    PolkaCertificate,
    Proposal,
    PublicKey,
    Signature,
    UpdateReceipt,
    Vote,
)

DEFAULT_MAX_SIZE = 4 * 1024 * 1024
"""Largest message accepted by default (a block with a few hundred receipts is ~100 KiB)."""

MAX_OPAQUE_DEPTH = 16
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1


class InvalidMessage(Exception):
    """A peer's (or a file's) bytes are not a valid message; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Every type that can be encoded at top level, with its wire tag.
MESSAGE_TAGS: dict[type, str] = {
    Proposal: "proposal",
    Vote: "vote",
    UpdateReceipt: "receipt",
    Candidate: "candidate",
    Attestation: "attestation",
    EvalReport: "eval_report",
    Block: "block",
    Header: "header",
    CommitCertificate: "commit_certificate",
    PolkaCertificate: "polka_certificate",
    ImprovementCertificate: "improvement_certificate",
    DuplicateVoteEvidence: "evidence",
    Genesis: "genesis",
    Ledger: "ledger",
    SignerState: "signer_state",
    GovernanceProposal: "governance_proposal",
    GovernanceApproval: "governance_approval",
}
_TYPES_BY_TAG = {tag: cls for cls, tag in MESSAGE_TAGS.items()}

WireMessage = Proposal | Vote | UpdateReceipt | Candidate | Attestation | EvalReport | Block
T = TypeVar("T")

_FIXED_LENGTHS: dict[object, int] = {
    Hash: HASH_SIZE,
    PublicKey: PUBLIC_KEY_SIZE,
    Signature: SIGNATURE_SIZE,
}

# ------------------------------------------------------------------------------------------
# Schema compilation: one (encode, decode) pair per type, built once from the type hints.
# ------------------------------------------------------------------------------------------

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any, str], Any]
_compiled: dict[object, tuple[Encoder, Decoder]] = {}


def _fail(path: str, what: str) -> typing.NoReturn:
    raise InvalidMessage(f"{path or 'message'}: {what}")


def _identity(value: Any) -> Any:
    return value


def _compile(tp: object) -> tuple[Encoder, Decoder]:
    cached = _compiled.get(tp)
    if cached is not None:
        return cached
    result = _build(tp)
    _compiled[tp] = result
    return result


def _build(tp: object) -> tuple[Encoder, Decoder]:  # noqa: C901 - one branch per type shape
    if tp in _FIXED_LENGTHS:
        size = _FIXED_LENGTHS[tp]

        def dec_fixed(v: Any, path: str) -> Any:
            if type(v) is not bytes:
                _fail(path, "expected bytes")
            if len(v) != size:
                _fail(path, f"expected {size} bytes, got {len(v)}")
            return v

        return _identity, dec_fixed
    if tp in NEWTYPE_BOUNDS:
        return _bounded_int(*NEWTYPE_BOUNDS[tp])
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        return _compile(supertype)
    if tp is bool:

        def dec_bool(v: Any, path: str) -> Any:
            if type(v) is not bool:
                _fail(path, "expected a boolean")
            return v

        return _identity, dec_bool
    if tp is int:
        return _bounded_int(_INT_MIN, _INT_MAX)
    if tp is float:

        def dec_float(v: Any, path: str) -> Any:
            if type(v) is not float:
                _fail(path, "expected a float")
            if not math.isfinite(v):
                _fail(path, "non-finite float")
            return v

        return float, dec_float
    if tp is str:

        def dec_str(v: Any, path: str) -> Any:
            if type(v) is not str:
                _fail(path, "expected a text string")
            return v

        return _identity, dec_str
    if tp is bytes:

        def dec_bytes(v: Any, path: str) -> Any:
            if type(v) is not bytes:
                _fail(path, "expected bytes")
            return v

        return _identity, dec_bytes
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        enum_type = tp

        def dec_enum(v: Any, path: str) -> Any:
            if type(v) is not int:
                _fail(path, "expected an enum integer")
            try:
                return enum_type(v)
            except ValueError:
                _fail(path, f"unknown {enum_type.__name__} value {v}")

        return int, dec_enum
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_dataclass(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union {tp}")
        enc_inner, dec_inner = _compile(inner[0])

        def enc_opt(v: Any) -> Any:
            return None if v is None else enc_inner(v)

        def dec_opt(v: Any, path: str) -> Any:
            return None if v is None else dec_inner(v, path)

        return enc_opt, dec_opt
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            enc_item, dec_item = _compile(args[0])

            def enc_seq(v: Any) -> Any:
                return [enc_item(x) for x in v]

            def dec_seq(v: Any, path: str) -> Any:
                if type(v) is not list:
                    _fail(path, "expected an array")
                return tuple(dec_item(x, f"{path}[{i}]") for i, x in enumerate(v))

            return enc_seq, dec_seq
        parts = [_compile(a) for a in args]

        def enc_fixed_tuple(v: Any) -> Any:
            return [enc(x) for (enc, _), x in zip(parts, v, strict=True)]

        def dec_fixed_tuple(v: Any, path: str) -> Any:
            if type(v) is not list or len(v) != len(parts):
                _fail(path, f"expected an array of {len(parts)}")
            return tuple(
                dec(x, f"{path}[{i}]") for i, ((_, dec), x) in enumerate(zip(parts, v, strict=True))
            )

        return enc_fixed_tuple, dec_fixed_tuple
    if origin is dict:
        return _check_opaque_map, _dec_opaque_map
    raise TypeError(f"unsupported type in schema: {tp}")


def _bounded_int(low: int, high: int) -> tuple[Encoder, Decoder]:
    def dec_int(v: Any, path: str) -> Any:
        if type(v) is not int:
            _fail(path, "expected an integer")
        if not low <= v <= high:
            _fail(path, f"integer out of range [{low}, {high}]")
        return v

    return _identity, dec_int


def _field_codec(cls: type, name: str, tp: object) -> tuple[Encoder, Decoder]:
    bounds = FIELD_BOUNDS.get((cls, name))
    return _bounded_int(*bounds) if bounds is not None else _compile(tp)


def _build_dataclass(cls: type) -> tuple[Encoder, Decoder]:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, *_field_codec(cls, f.name, hints[f.name])) for f in dataclasses.fields(cls)]
    names = frozenset(name for name, _, _ in fields)

    def enc_dc(v: Any) -> Any:
        return {name: enc(getattr(v, name)) for name, enc, _ in fields}

    def dec_dc(v: Any, path: str) -> Any:
        if type(v) is not dict:
            _fail(path, f"expected a map for {cls.__name__}")
        keys = set(v)
        if keys != names:
            unknown = sorted(str(k) for k in keys - names)
            missing = sorted(names - keys)
            detail = []
            if unknown:
                detail.append(f"unknown fields {unknown}")
            if missing:
                detail.append(f"missing fields {missing}")
            _fail(path, f"{cls.__name__}: " + ", ".join(detail))
        kwargs = {name: dec(v[name], f"{path}.{name}" if path else name) for name, _, dec in fields}
        return cls(**kwargs)

    return enc_dc, dec_dc


def _check_opaque(v: Any, path: str, depth: int) -> None:
    if depth > MAX_OPAQUE_DEPTH:
        _fail(path, "nested too deeply")
    if v is None or type(v) in (bool, str, bytes):
        return
    if type(v) is int:
        if not _INT_MIN <= v <= _INT_MAX:
            _fail(path, "integer out of range")
        return
    if type(v) is float:
        if not math.isfinite(v):
            _fail(path, "non-finite float")
        return
    if type(v) is list:
        for i, x in enumerate(v):
            _check_opaque(x, f"{path}[{i}]", depth + 1)
        return
    if type(v) is dict:
        for k, x in v.items():
            if type(k) is not str:
                _fail(path, "map keys must be text strings")
            _check_opaque(x, f"{path}.{k}", depth + 1)
        return
    _fail(path, f"unsupported value of type {type(v).__name__}")


def _check_opaque_map(v: Any) -> Any:
    _check_opaque(v, "map", 0)
    if type(v) is not dict:
        raise ValueError("expected a map")
    return v


def _dec_opaque_map(v: Any, path: str) -> Any:
    if type(v) is not dict:
        _fail(path, "expected a map")
    _check_opaque(v, path, 0)
    return v


# ------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------


def canonical(value: Any) -> bytes:
    """Canonical CBOR of plain values (lists, maps, ints, bytes, str, floats, None)."""
    return cbor2.dumps(value, canonical=True)


def encode(obj: Any) -> bytes:
    """Canonical CBOR of a registered type: `[tag, {field: value}]`."""
    tag = MESSAGE_TAGS.get(type(obj))
    if tag is None:
        raise TypeError(f"{type(obj).__name__} is not a registered message type")
    enc, _ = _compile(type(obj))
    return canonical([tag, enc(obj)])


def encode_message(msg: WireMessage) -> bytes:
    """Encode a message that travels on the wire (or any other registered type)."""
    return encode(msg)


def load_cbor(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Parse size-limited CBOR from a peer; any failure is `InvalidMessage`, never a crash."""
    if type(data) is not bytes:
        raise InvalidMessage("message is not bytes")
    if len(data) > max_size:
        raise InvalidMessage(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        return cbor2.loads(data)
    except Exception as exc:  # cbor2 raises many types on garbage: all are the peer's fault
        raise InvalidMessage(f"not CBOR: {type(exc).__name__}") from None


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE, expected: Sequence[type] = ()) -> Any:
    """Decode any registered type strictly; `expected` limits which types are accepted."""
    raw = load_cbor(data, max_size=max_size)
    if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not str:
        raise InvalidMessage("expected [tag, body]")
    cls = _TYPES_BY_TAG.get(raw[0])
    if cls is None:
        raise InvalidMessage(f"unknown message tag {raw[0][:40]!r}")
    if expected and cls not in expected:
        raise InvalidMessage(f"unexpected message type {raw[0]!r}")
    _, dec = _compile(cls)
    try:
        obj = dec(raw[1], "")
        reencoded = encode(obj)
    except InvalidMessage:
        raise
    except RecursionError:
        raise InvalidMessage("nested too deeply") from None
    except Exception as exc:
        raise InvalidMessage(f"malformed {raw[0]}: {type(exc).__name__}") from None
    if reencoded != data:
        raise InvalidMessage("not canonically encoded")
    return obj


def decode_as(data: bytes, cls: type[T], *, max_size: int = DEFAULT_MAX_SIZE) -> T:
    """Decode a value that must be of type `cls`."""
    obj: T = decode(data, max_size=max_size, expected=(cls,))
    return obj


def decode_message(data: bytes, max_size: int = DEFAULT_MAX_SIZE) -> WireMessage:
    """Decode a gossiped message: Proposal, Vote, UpdateReceipt, Candidate, Attestation,
    EvalReport or Block."""
    msg: WireMessage = decode(
        data,
        max_size=max_size,
        expected=(Proposal, Vote, UpdateReceipt, Candidate, Attestation, EvalReport, Block),
    )
    return msg


def sha256(data: bytes) -> Hash:
    """SHA-256 as a Hash."""
    return Hash(hashlib.sha256(data).digest())


def hash_of(obj: Any) -> Hash:
    """SHA-256 of the canonical encoding of a registered type."""
    return sha256(encode(obj))


def block_hash(block: Block) -> Hash:
    """A block's id: SHA-256 of its whole canonical encoding (header and body); memoized."""
    return _BLOCK_IDS(block, hash_of)


def genesis_hash(genesis: Genesis) -> Hash:
    """The genesis id, the parent hash of block 1."""
    return hash_of(genesis)


def receipt_hash(receipt: UpdateReceipt) -> Hash:
    """An update receipt's id (covers its signature; BLS signatures are deterministic)."""
    return _RECEIPT_IDS(receipt, hash_of)


# An id is asked for again while its object is checked, stored and built on, within a height
# or two; each entry keeps its object alive (a block with all its receipts and certificates).
_BLOCK_IDS: IdentityMemo[Block, Hash] = IdentityMemo(64)
_RECEIPT_IDS: IdentityMemo[UpdateReceipt, Hash] = IdentityMemo(1024)


def ledger_root(ledger: Ledger) -> Hash:
    """The ledger (state) root recorded in the header."""
    return hash_of(ledger)


def commit_hash(certificate: CommitCertificate | None) -> Hash:
    """The header's last-commit hash; 32 zero bytes when there is no previous commit."""
    return Hash(bytes(HASH_SIZE)) if certificate is None else hash_of(certificate)


def updates_root(receipts: Sequence[UpdateReceipt], rejected: Sequence[UpdateReceipt] = ()) -> Hash:
    """Root over the accepted and rejected update receipts of a block or candidate."""
    return sha256(
        canonical(
            [
                "bcfl/updates/v1",
                [receipt_hash(r) for r in receipts],
                [receipt_hash(r) for r in rejected],
            ]
        )
    )


def candidate_hash(candidate: Candidate) -> Hash:
    """A candidate's identity: height, base, model, rule, receipts and rejection reasons (not
    round or proposer)."""
    return candidate_id(
        candidate.height,
        candidate.base_model_hash,
        candidate.model_hash,
        candidate.rule,
        candidate.receipts,
        candidate.rejected,
        candidate.rejection_reasons,
    )


def candidate_id(
    height: int,
    base_model_hash: bytes,
    model_hash: bytes,
    rule: str,
    receipts: Sequence[UpdateReceipt],
    rejected: Sequence[UpdateReceipt],
    rejection_reasons: Sequence[str] = (),
) -> Hash:
    """The candidate hash from its parts, as a block's validity check recomputes it; it covers
    the reason of every rejection (consensus/rejections.py)."""
    return sha256(
        canonical(
            [
                "bcfl/candidate-id/v2",
                height,
                base_model_hash,
                model_hash,
                rule,
                updates_root(receipts, rejected),
                list(rejection_reasons),
            ]
        )
    )
