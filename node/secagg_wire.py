"""The two gossip messages of secure aggregation in the daemon, and their checks at the edge.

docs/ARCHITECTURE.md "Secure aggregation": the round's proposer names U3 in a signed `Draft`;
each included trainer answers one draft per height with a signed `Reveal`. Both travel on
`bcfl/<chain id>/secagg` as strict canonical CBOR: `[kind, version, chain id, height, ...,
signature]`, BLS-signed by a member over `[domain tag, chain id, fields...]`. `check` is the
gossip edge's validator for the topic: a message is refused with a reason of
`telemetry.labels.GOSSIP_REJECT_REASONS` (oversized, undecodable, schema, wrong-chain,
unknown-signer, height-window, invalid, bad-signature) and counted by the network, never raised.
`pairing_for` is the public setting of a height (session, pairing set, keys) that trainers,
validators and `bcfl chain verify` derive alike from the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from consensus.codec import block_hash, genesis_hash
from consensus.crypto import Signer, Verifier
from consensus.types import ROLE_TRAINER, SIGNATURE_SIZE, Genesis, ValidatorInfo
from consensus.validators import ValidatorSet
from learning.secagg import chained
from learning.secagg.chained import RevealBody, decode_body, encode_body
from learning.secagg.params import SecAggError, SecAggParams
from learning.secagg.primitives import session_id

DRAFT, REVEAL = "secagg-draft", "secagg-reveal"
VERSION = 1
MAX_INCLUDED = 1024
WINDOW_BEHIND, WINDOW_AHEAD = 1, 8


@dataclass(frozen=True, slots=True)
class Draft:
    """The proposer of (height, round) names U3: the author and masked blob of each update."""

    chain_id: str
    height: int
    round: int
    proposer: int
    included: Mapping[int, bytes]
    signature: bytes = b""

    @property
    def draft_id(self) -> bytes:
        """U3's identity: height and included set, not the round (a later round reuses it)."""
        body = [self.height, sorted([u, h] for u, h in self.included.items())]
        return hashlib.sha256(cbor2.dumps(body, canonical=True)).digest()


@dataclass(frozen=True, slots=True)
class Reveal:
    """One included trainer's answer to one draft (at most one draft per height)."""

    chain_id: str
    height: int
    draft_id: bytes
    body: RevealBody
    signature: bytes = b""

    @property
    def revealer(self) -> int:
        return self.body.revealer


SecAggMessage = Draft | Reveal


def _included(d: Draft) -> list[Any]:
    return sorted([u, h] for u, h in d.included.items())


def sign_bytes(m: SecAggMessage) -> bytes:
    """The domain-separated bytes a member signs."""
    if isinstance(m, Draft):
        fields = [b"bcfl/secagg-draft/v1", m.chain_id, m.height, m.round, m.proposer, _included(m)]
    else:
        fields = [b"bcfl/secagg-reveal/v1", m.chain_id, m.height, m.draft_id, encode_body(m.body)]
    return cbor2.dumps(fields, canonical=True)


def signed(m: SecAggMessage, signer: Signer) -> SecAggMessage:
    """`m` with the member's signature."""
    sig = bytes(signer.sign(sign_bytes(m)))
    if isinstance(m, Draft):
        return Draft(m.chain_id, m.height, m.round, m.proposer, m.included, sig)
    return Reveal(m.chain_id, m.height, m.draft_id, m.body, sig)


def encode(m: SecAggMessage) -> bytes:
    """Canonical CBOR of a signed message."""
    if isinstance(m, Draft):
        value = [
            DRAFT,
            VERSION,
            m.chain_id,
            m.height,
            m.round,
            m.proposer,
            _included(m),
            m.signature,
        ]
    else:
        value = [
            REVEAL,
            VERSION,
            m.chain_id,
            m.height,
            m.draft_id,
            encode_body(m.body),
            m.signature,
        ]
    return cbor2.dumps(value, canonical=True)


# -- the public setting of a height (also `bcfl chain verify`'s, node/verify.py) --------------


def params_of(genesis: Genesis) -> SecAggParams:
    p = genesis.privacy
    return SecAggParams(
        clip_range=p.secagg_clip_range,
        quant_range=p.secagg_quant_range,
        modulus_bits=p.secagg_modulus_bits,
        neighbours=p.secagg_neighbours,
        threshold=p.secagg_threshold,
    )


def pairing_for(
    genesis: Genesis, height: int, parent_hash: bytes, members: Sequence[ValidatorInfo]
) -> chained.Pairing:
    """The public setting of `height`: its session and the keys of its set's trainers."""
    keys = {
        i: m.agreement_key
        for i, m in enumerate(members)
        if ROLE_TRAINER in m.roles and len(m.agreement_key) == 32
    }
    return chained.Pairing(
        session_id(genesis.chain_id, height, parent_hash), keys, params_of(genesis)
    )


def parent_hash_of(genesis: Genesis, last_block: Any) -> bytes:
    return genesis_hash(genesis) if last_block is None else block_hash(last_block)


class WireError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(v: Any, low: int, high: int) -> int:
    if type(v) is not int or not low <= v <= high:
        raise WireError("schema")
    return v


def _bytes(v: Any, size: int) -> bytes:
    if type(v) is not bytes or len(v) != size:
        raise WireError("schema")
    return v


def decode(data: bytes, cap: int) -> SecAggMessage:
    """Strictly decode a message (size, CBOR, canonical form, exact shape) or raise WireError."""
    if len(data) > cap:
        raise WireError("oversized")
    try:
        v = cbor2.loads(data)
    except Exception:  # cbor2 raises several types on garbage; all mean "undecodable"
        raise WireError("undecodable") from None
    if cbor2.dumps(v, canonical=True) != data or type(v) is not list or len(v) < 4:
        raise WireError("schema")
    if v[1] != VERSION or type(v[2]) is not str:
        raise WireError("schema")
    height = _int(v[3], 1, 2**62)
    if v[0] == DRAFT and len(v) == 8:
        if type(v[6]) is not list or len(v[6]) > MAX_INCLUDED:
            raise WireError("schema")
        included: dict[int, bytes] = {}
        for item in v[6]:
            if type(item) is not list or len(item) != 2:
                raise WireError("schema")
            u = _int(item[0], 0, MAX_INCLUDED - 1)
            if u in included:
                raise WireError("schema")
            included[u] = _bytes(item[1], 32)
        return Draft(
            v[2],
            height,
            _int(v[4], 0, 2**31),
            _int(v[5], 0, MAX_INCLUDED - 1),
            included,
            _bytes(v[7], SIGNATURE_SIZE),
        )
    if v[0] == REVEAL and len(v) == 7:
        try:
            body = decode_body(v[5])
        except SecAggError:
            raise WireError("schema") from None
        return Reveal(v[2], height, _bytes(v[4], 32), body, _bytes(v[6], SIGNATURE_SIZE))
    raise WireError("schema")


def check(
    data: bytes,
    *,
    cap: int,
    chain_id: str,
    current_height: int,
    validator_set: ValidatorSet,
    verifier: Verifier,
) -> tuple[SecAggMessage | None, str | None]:
    """The gossip edge for the secagg topic: (message, None) or (None, reason)."""
    try:
        m = decode(data, cap)
    except WireError as exc:
        return None, exc.reason
    if m.chain_id != chain_id:
        return None, "wrong-chain"
    members: tuple[ValidatorInfo, ...] = validator_set.members
    signer = m.proposer if isinstance(m, Draft) else m.revealer
    if not 0 <= signer < len(members):
        return None, "unknown-signer"
    if isinstance(m, Draft):
        if not members[signer].power or validator_set.proposer_for(m.height, m.round) != signer:  # type: ignore[arg-type]
            return None, "unknown-signer"
        if not m.included or any(not 0 <= u < len(members) for u in m.included):
            return None, "invalid"
    elif ROLE_TRAINER not in members[signer].roles:
        return None, "unknown-signer"
    if not current_height - WINDOW_BEHIND <= m.height <= current_height + WINDOW_AHEAD:
        return None, "height-window"
    if not verifier.verify(members[signer].public_key, sign_bytes(m), m.signature):
        return None, "bad-signature"
    return m, None
