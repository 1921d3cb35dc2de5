"""Secure aggregation as the daemon runs it: long-term member keys on chain, one height a session.

docs/ARCHITECTURE.md "Secure aggregation" has the mapping and its argument; in short:
- every trainer u has a long-term X25519 key a_u whose public half is in the member set
  (`ValidatorInfo.agreement_key`); the pairing set P(h) of height h is the height's trainers
  with a key, and the neighbour graph on P(h) is derived from the session (graph.py);
- the session of height h is SHA-256(chain id, h, parent block hash) (primitives.session_id);
  the pair seed s_uv(h) = HKDF(X25519(a_u, a_v), "mask", session, min, max), so revealing one
  height's seed of a pair tells nothing about another height's;
- u draws a fresh self-mask seed b_u from `secrets`, Shamir-shares it among its holders
  H_u = N(u) + {u} (threshold t_u) and seals each share to its holder with ChaCha20-Poly1305
  under HKDF(X25519(a_u, a_v), "share", session, u, v) and a random nonce, inside its masked
  blob: y_u = q(x_u) + PRG(b_u) + sum over v in N(u) of +-PRG(s_uv) (mod 2^b);
- after the update window the proposer names U3 (a signed draft: author and masked blob of
  each included update); each survivor v in U3 reveals once per height, for one U3: its share
  of b_u for each u of U3 it holds, and s_uv(h) for each neighbour u outside U3, never both;
- the transcript (U3, b_u of every u in U3, s_uv of every dropped pair) plus the masked blobs
  give anyone the sum of the quantised updates (`masked_total`), hence the candidate bytes.

Everything here is pure: the node (node/services/secagg_round.py) does the I/O.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from learning.secagg.fields import MALFORMED, MAX_PARTICIPANTS, loads
from learning.secagg.fields import index as _index
from learning.secagg.fields import malformed as _fail
from learning.secagg.fields import pairs as _pairs
from learning.secagg.fields import raw as _raw
from learning.secagg.graph import neighbours
from learning.secagg.params import SecAggError, SecAggParams
from learning.secagg.primitives import KEY_BYTES, agree, mask_vector, pair_info
from learning.secagg.quantize import F64, U32, quantise
from learning.secagg.shamir import SHARE_BYTES, Share, combine, split

MAGIC = b"BCFLSA02"
VERSION = 1
NONCE_BYTES = 12
SEALED_SHARE_BYTES = NONCE_BYTES + 8 + SHARE_BYTES + 16
MAX_HEADER_BYTES = 64 + MAX_PARTICIPANTS * (SEALED_SHARE_BYTES + 16)


@dataclass(frozen=True, slots=True)
class Pairing:
    """The public setting of one height: its session, its pairing set and their keys."""

    session: bytes
    keys: Mapping[int, bytes]  # member index -> X25519 public key, the trainers of P(h)
    params: SecAggParams

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(self.keys))

    def graph(self) -> dict[int, frozenset[int]]:
        return neighbours(self.keys, self.params.neighbours, self.session)

    def holders(self, u: int) -> list[int]:
        """Who holds a share of u's self-mask seed: its neighbours and itself, sorted."""
        return sorted(self.graph()[u] | {u})

    def threshold(self, u: int) -> int:
        return self.params.threshold_for(len(self.holders(u)))


@dataclass(frozen=True, slots=True)
class MaskedUpdate:
    """A decoded masked blob: its author, the sealed shares of b_u, and the masked values."""

    author: int
    session: bytes
    sealed: Mapping[int, bytes]  # holder -> nonce + ciphertext
    values: U32


@dataclass(frozen=True, slots=True)
class Transcript:
    """What makes a height's sum recomputable: U3, the self seeds, the dropped pairs' seeds."""

    session: bytes
    pairing: tuple[int, ...]
    included: Mapping[int, bytes]  # author -> masked blob hash
    self_seeds: Mapping[int, bytes]
    pair_seeds: Mapping[tuple[int, int], bytes]  # (dropped, included neighbour) -> s_uv


def pair_seed(
    private: X25519PrivateKey, me: int, peer: int, peer_pk: bytes, session: bytes
) -> bytes:
    """s_uv(h) of the pair {me, peer}: the same from either side."""
    return agree(private, peer_pk, pair_info(session, b"mask", min(me, peer), max(me, peer)))


def _share_key(
    private: X25519PrivateKey, sender: int, receiver: int, peer_pk: bytes, session: bytes
) -> bytes:
    return agree(private, peer_pk, pair_info(session, b"share", sender, receiver))


def mask_update(pairing: Pairing, me: int, private: X25519PrivateKey, vector: F64) -> bytes:
    """The masked blob of trainer `me` for a clipped update `vector` (fresh b_u each call)."""
    if me not in pairing.keys:
        raise SecAggError(f"member {me} is not in this height's pairing set")
    graph = pairing.graph()
    holders = pairing.holders(me)
    self_seed = secrets.token_bytes(KEY_BYTES)
    shares = split(self_seed, pairing.threshold(me), [v + 1 for v in holders])
    sealed = []
    for v, share in zip(holders, shares, strict=True):
        key = _share_key(private, me, v, pairing.keys[v], pairing.session)
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = me.to_bytes(4, "big") + v.to_bytes(4, "big") + share.to_bytes()
        sealed.append([v, nonce + ChaCha20Poly1305(key).encrypt(nonce, plain, pairing.session)])
    y = quantise(vector, pairing.params)
    y += mask_vector(self_seed, y.size)
    for v in sorted(graph[me]):
        pad = mask_vector(pair_seed(private, me, v, pairing.keys[v], pairing.session), y.size)
        if me < v:
            y += pad
        else:
            y -= pad
    if pairing.params.modulus_bits < 32:
        y &= np.uint32(pairing.params.modulus - 1)
    header = cbor2.dumps([VERSION, me, pairing.session, sealed], canonical=True)
    return MAGIC + struct.pack("<I", len(header)) + header + y.astype("<u4").tobytes()


def decode_masked(blob: bytes, length: int | None = None) -> MaskedUpdate:
    """Decode a masked blob strictly; `length` (coordinates) is checked when given."""
    if blob[: len(MAGIC)] != MAGIC or len(blob) < len(MAGIC) + 4:
        raise SecAggError(
            "a masked update does not start with the secure aggregation magic", MALFORMED
        )
    (size,) = struct.unpack("<I", blob[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if size > MAX_HEADER_BYTES or start + size > len(blob):
        raise _fail("update header")
    header = _loads(blob[start : start + size], "update header")
    if type(header) is not list or len(header) != 4 or header[0] != VERSION:
        raise _fail("update header")
    author = _index(header[1], "update header")
    session = _raw(header[2], KEY_BYTES, "update header")
    sealed = _pairs(header[3], SEALED_SHARE_BYTES, "update header")
    body = len(blob) - start - size
    if body % 4 or (length is not None and body != 4 * length):
        raise SecAggError(
            f"a masked update has {body} bytes of values, the model needs {4 * (length or 0)}",
            MALFORMED,
        )
    values = np.frombuffer(blob, dtype="<u4", offset=start + size).astype(np.uint32)
    return MaskedUpdate(author, session, sealed, values)


def open_share(pairing: Pairing, me: int, private: X25519PrivateKey, masked: MaskedUpdate) -> Share:
    """This holder's share of the self-mask seed in `masked` (checked: pair, point, key)."""
    u = masked.author
    if masked.session != pairing.session or u not in pairing.keys:
        raise SecAggError(f"the masked update of {u} is not of this height's session")
    sealed = masked.sealed.get(me)
    if sealed is None or set(masked.sealed) != set(pairing.holders(u)):
        raise SecAggError(f"the masked update of {u} does not seal a share to each of its holders")
    key = _share_key(private, u, me, pairing.keys[u], pairing.session)
    try:
        plain = ChaCha20Poly1305(key).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], pairing.session
        )
    except InvalidTag as exc:
        raise SecAggError(f"the share that {u} sealed to {me} does not open") from exc
    if plain[:8] != u.to_bytes(4, "big") + me.to_bytes(4, "big"):
        raise SecAggError(f"the share that {u} sealed to {me} names another pair")
    share = Share.from_bytes(plain[8:])
    if share.x != me + 1:
        raise SecAggError(f"the share that {u} sealed to {me} is not at {me}'s point")
    return share


@dataclass(frozen=True, slots=True)
class RevealBody:
    """One survivor's answer to one U3: shares of b_u for included u, seeds for dropped u."""

    revealer: int
    seed_shares: Mapping[int, Share]
    pair_seeds: Mapping[int, bytes]


def reveal_for(
    pairing: Pairing,
    me: int,
    private: X25519PrivateKey,
    included: Iterable[int],
    masked: Mapping[int, MaskedUpdate],
) -> RevealBody:
    """What `me` reveals for U3 = `included` (`masked`: the U3 updates it holds shares of).

    Refused (reason `secagg-threshold`) when fewer than t_me of its holders are included, as
    then the seeds it would reveal could expose an included neighbour (Bonawitz et al. 2017)."""
    u3 = frozenset(included)
    if me not in u3 or me not in pairing.keys:
        raise SecAggError(f"member {me} reveals only for a set that includes it")
    graph = pairing.graph()
    alive = len(u3 & set(pairing.holders(me)))
    needed = max(2, pairing.threshold(me))  # never for a set where one update is the sum
    if alive < needed:
        raise SecAggError(
            f"only {alive} of member {me}'s holders are included, {needed} are needed",
            reason="secagg-threshold",
        )
    shares = {
        u: open_share(pairing, me, private, masked[u]) for u in sorted((graph[me] | {me}) & u3)
    }
    seeds = {
        u: pair_seed(private, me, u, pairing.keys[u], pairing.session)
        for u in sorted(graph[me] - u3)
    }
    return RevealBody(me, shares, seeds)


def check_reveal(pairing: Pairing, included: Iterable[int], body: RevealBody) -> None:
    """Refuse a reveal that is about someone it cannot hold, or about one member twice."""
    u3 = frozenset(included)
    graph = pairing.graph()
    v = body.revealer
    if v not in u3 or v not in pairing.keys:
        raise SecAggError(f"a reveal from {v}, who is not included", MALFORMED)
    if set(body.seed_shares) & set(body.pair_seeds):
        raise SecAggError(f"the reveal of {v} holds a share and a seed for one member", MALFORMED)
    if set(body.seed_shares) != (graph[v] | {v}) & u3:
        raise SecAggError(
            f"the reveal of {v} does not hold one share per included holder", MALFORMED
        )
    if set(body.pair_seeds) != graph[v] - u3:
        raise SecAggError(
            f"the reveal of {v} does not hold one seed per dropped neighbour", MALFORMED
        )
    if any(s.x != v + 1 for s in body.seed_shares.values()):
        raise SecAggError(f"the reveal of {v} holds a share at another point", MALFORMED)


def needed_pairs(pairing: Pairing, included: Iterable[int]) -> set[tuple[int, int]]:
    """The (dropped, included neighbour) pairs whose seeds the sum needs."""
    u3 = frozenset(included)
    graph = pairing.graph()
    return {(d, v) for d in pairing.keys if d not in u3 for v in graph[d] & u3}


def transcript_from(
    pairing: Pairing, included: Mapping[int, bytes], reveals: Iterable[RevealBody]
) -> Transcript:
    """Combine the reveals (each checked) into the transcript; `secagg-threshold` if short."""
    u3 = frozenset(included)
    shares: dict[int, list[Share]] = {u: [] for u in u3}
    seeds: dict[tuple[int, int], bytes] = {}
    for body in reveals:
        check_reveal(pairing, u3, body)
        for u, share in body.seed_shares.items():
            shares[u].append(share)
        for d, seed in body.pair_seeds.items():
            seeds[(d, body.revealer)] = seed
    missing = needed_pairs(pairing, u3) - set(seeds)
    if missing:
        raise SecAggError(
            f"no reveal of the pair seeds {sorted(missing)} of dropped trainers",
            reason="secagg-threshold",
        )
    self_seeds = {
        u: combine(shares[u], pairing.threshold(u), f"the self-mask seed of member {u}")
        for u in sorted(u3)
    }
    return Transcript(pairing.session, pairing.members, dict(included), self_seeds, seeds)


def masked_total(
    pairing: Pairing, transcript: Transcript, masked: Mapping[int, MaskedUpdate], length: int
) -> U32:
    """The exact sum (mod 2^b) of the included quantised updates, from public data only."""
    if transcript.session != pairing.session or transcript.pairing != pairing.members:
        raise SecAggError("the transcript is not of this height's session and pairing set")
    u3 = frozenset(transcript.included)
    if not u3 or not u3 <= set(pairing.keys) or set(masked) != u3:
        raise SecAggError("the transcript's included updates are not the masked updates given")
    if set(transcript.self_seeds) != u3 or set(transcript.pair_seeds) != needed_pairs(pairing, u3):
        raise SecAggError("the transcript does not hold exactly the seeds its sum needs")
    total = np.zeros(length, dtype=np.uint32)
    for u in sorted(u3):
        m = masked[u]
        if m.author != u or m.session != pairing.session or m.values.size != length:
            raise SecAggError(f"the masked update of {u} is not of this session and model")
        total += m.values
        total -= mask_vector(transcript.self_seeds[u], length)
    for (d, v), seed in sorted(transcript.pair_seeds.items()):
        pad = mask_vector(seed, length)  # v added +pad if v < d, else -pad: remove it
        if v < d:
            total -= pad
        else:
            total += pad
    if pairing.params.modulus_bits < 32:
        total &= np.uint32(pairing.params.modulus - 1)
    return total


# -- wire: the transcript and the reveal bodies as strict canonical CBOR ----------------------


def _loads(data: bytes, what: str) -> Any:
    return loads(data, what)


def encode_body(body: RevealBody) -> list[Any]:
    """[revealer, [[u, share]...], [[u, seed]...]] (sorted), for a signed reveal."""
    return [
        body.revealer,
        sorted([u, s.to_bytes()] for u, s in body.seed_shares.items()),
        sorted([u, s] for u, s in body.pair_seeds.items()),
    ]


def decode_body(value: Any) -> RevealBody:
    """The inverse of `encode_body`, strictly."""
    if type(value) is not list or len(value) != 3:
        raise _fail("reveal")
    shares = _pairs(value[1], SHARE_BYTES, "reveal")
    try:
        decoded = {u: Share.from_bytes(s) for u, s in shares.items()}
    except SecAggError as exc:
        raise _fail("reveal") from exc
    return RevealBody(_index(value[0], "reveal"), decoded, _pairs(value[2], KEY_BYTES, "reveal"))


MAX_TRANSCRIPT_BYTES = (
    64
    + MAX_PARTICIPANTS * 8
    + MAX_PARTICIPANTS * 2 * (KEY_BYTES + 8)
    + 64 * MAX_PARTICIPANTS * (KEY_BYTES + 12)
)


def encode_transcript(t: Transcript) -> bytes:
    """[version, session, P(h), [[u, blob]...], [[u, b_u]...], [[d, v, s_dv]...]], sorted."""
    return cbor2.dumps(
        [
            VERSION,
            t.session,
            list(t.pairing),
            sorted([u, h] for u, h in t.included.items()),
            sorted([u, s] for u, s in t.self_seeds.items()),
            sorted([d, v, s] for (d, v), s in t.pair_seeds.items()),
        ],
        canonical=True,
    )


def decode_transcript(data: bytes) -> Transcript:
    """The inverse of `encode_transcript`, strictly (size, shape, lengths, order)."""
    if len(data) > MAX_TRANSCRIPT_BYTES:
        raise SecAggError("a secure aggregation transcript is oversized", MALFORMED)
    v = _loads(data, "transcript")
    if type(v) is not list or len(v) != 6 or v[0] != VERSION or type(v[2]) is not list:
        raise _fail("transcript")
    pairing = tuple(_index(i, "transcript") for i in v[2])
    if list(pairing) != sorted(set(pairing)):
        raise _fail("transcript")
    if type(v[5]) is not list or len(v[5]) > 64 * MAX_PARTICIPANTS:
        raise _fail("transcript")
    seeds: dict[tuple[int, int], bytes] = {}
    for item in v[5]:
        if type(item) is not list or len(item) != 3:
            raise _fail("transcript")
        pair = (_index(item[0], "transcript"), _index(item[1], "transcript"))
        if pair in seeds:
            raise _fail("transcript")
        seeds[pair] = _raw(item[2], KEY_BYTES, "transcript")
    return Transcript(
        _raw(v[1], KEY_BYTES, "transcript"),
        pairing,
        _pairs(v[3], 32, "transcript"),
        _pairs(v[4], KEY_BYTES, "transcript"),
        seeds,
    )


def masked_of(blobs: Mapping[int, bytes], length: int) -> dict[int, MaskedUpdate]:
    """Decode every masked blob of a height (refusing a wrong length)."""
    return {u: decode_masked(b, length) for u, b in blobs.items()}


def reveal_subset(bodies: Sequence[RevealBody], included: Iterable[int]) -> list[RevealBody]:
    """The reveals of the included only, one per revealer (the first)."""
    u3 = frozenset(included)
    seen: dict[int, RevealBody] = {}
    for b in bodies:
        if b.revealer in u3:
            seen.setdefault(b.revealer, b)
    return [seen[k] for k in sorted(seen)]
