"""The secure aggregation protocol of Bonawitz et al. 2017 (semi-honest variant), with SecAgg+
neighbourhoods (Bell et al. 2020): a participant's side and the deterministic unmasking.

One session (a height) runs four steps; the set that finishes each step is fixed publicly
before the next one starts (on a chain: by what the block or the round's candidate includes).
1. AdvertiseKeys: participant u draws two fresh X25519 key pairs, c_u (to encrypt its shares)
   and s_u (to agree mask seeds), and publishes both public keys. U1 = those who did.
2. ShareKeys: u draws a self-mask seed b_u, Shamir-shares b_u and the private key s_u^SK
   among its neighbours in U1 and itself (threshold t_u of those k_u + 1 holders), and sends
   each its two shares encrypted under HKDF(X25519(c_u, c_v)). U2 = those whose shares went out.
3. MaskedInput: u publishes y_u = q(x_u) + PRG(b_u) + sum over neighbours v in U2 of
   (+PRG(s_uv) if u < v else -PRG(s_uv)) mod 2^b, with s_uv = HKDF(X25519(s_u, s_v)).
   U3 = those whose masked input is included.
4. Unmasking: each survivor v reveals, for every neighbour u in U2 and for itself, EITHER its share of b_u
   (u in U3) OR its share of s_u^SK (u dropped), never both: a participant that revealed for
   one U3 refuses another. From t_u shares anyone recovers b_u for u in U3 and s_u^SK for the
   dropped; then sum(y) - sum PRG(b_u) - the dropped pairs' masks = sum q(x_u) exactly.
Pairwise masks of two included participants cancel in the sum, so one y_u alone is uniformly
distributed: it says nothing about x_u to anyone who lacks b_u, and b_u needs t_u shares.
`unmask` turns the revealed shares into an `UnmaskRecord` (the recovered secrets); `masked_sum`
recomputes the sum from the masked inputs, the public keys and that record, deterministically,
which is what a validator, an observer or `bcfl chain verify` runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from learning.secagg.graph import neighbours
from learning.secagg.params import SecAggError, SecAggParams
from learning.secagg.primitives import (
    KEY_BYTES,
    agree,
    mask_vector,
    new_private_key,
    open_sealed,
    pair_info,
    private_bytes,
    public_bytes,
    seal,
)
from learning.secagg.quantize import F64, U32, quantise
from learning.secagg.shamir import SHARE_BYTES, Share, split

MASKED_MAGIC = b"BCFLSA01"
_PLAIN_SHARES = 8 + 2 * SHARE_BYTES
SEALED_BYTES = _PLAIN_SHARES + 16


@dataclass(frozen=True, slots=True)
class KeyAdvert:
    """Step 1: a participant's two public keys for one session."""

    index: int
    cipher_pk: bytes
    mask_pk: bytes


@dataclass(frozen=True, slots=True)
class SealedShares:
    """Step 2: the shares of b_u and s_u^SK for one neighbour, encrypted to it."""

    sender: int
    receiver: int
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class Reveal:
    """Step 4: one survivor's shares: of b_u for included neighbours, of s_u^SK for dropped ones."""

    sender: int
    seed_shares: Mapping[int, Share]
    key_shares: Mapping[int, Share]


@dataclass(frozen=True, slots=True)
class UnmaskRecord:
    """The recovered secrets that make a sum recomputable: b_u of each included participant and
    s_u^SK of each dropped neighbour of one (checked against its advertised public key)."""

    self_seeds: Mapping[int, bytes]
    dropped_keys: Mapping[int, bytes]


def adds_pair_mask(u: int, v: int) -> bool:
    """True when u adds the pair's mask (u is the lower index), False when it subtracts it."""
    return u < v


def encode_masked(vector: U32) -> bytes:
    """A masked input as a blob: an 8-byte magic and little-endian uint32 values."""
    return MASKED_MAGIC + vector.astype("<u4").tobytes()


def decode_masked(blob: bytes, length: int) -> U32:
    """Decode a masked input of `length` coordinates; refuse anything else with one sentence."""
    if blob[: len(MASKED_MAGIC)] != MASKED_MAGIC:
        raise SecAggError("a masked update does not start with the secure aggregation magic")
    if len(blob) != len(MASKED_MAGIC) + 4 * length:
        raise SecAggError(
            f"a masked update has {len(blob) - len(MASKED_MAGIC)} bytes of values, "
            f"the model needs {4 * length}"
        )
    return np.frombuffer(blob, dtype="<u4", offset=len(MASKED_MAGIC)).astype(np.uint32)


def check_adverts(adverts: Mapping[int, KeyAdvert]) -> None:
    """Refuse a key advert filed under another index or with a key that is not 32 bytes."""
    for index, advert in adverts.items():
        if advert.index != index:
            raise SecAggError(f"the key advert filed under {index} is by {advert.index}")
        if len(advert.cipher_pk) != KEY_BYTES or len(advert.mask_pk) != KEY_BYTES:
            raise SecAggError(f"participant {index} advertised a key that is not 32 bytes")


def pair_seed(private: X25519PrivateKey, peer_pk: bytes, session: bytes, u: int, v: int) -> bytes:
    """The mask seed s_uv of the pair {u, v}: the same from either side."""
    return agree(private, peer_pk, pair_info(session, b"mask", min(u, v), max(u, v)))


class Participant:
    """One trainer's side of a session; its secrets never leave it except as shares."""

    def __init__(self, index: int, params: SecAggParams, session: bytes) -> None:
        self.index = index
        self.params = params
        self.session = session
        self._cipher = new_private_key()
        self._mask = new_private_key()
        self._self_seed = secrets.token_bytes(KEY_BYTES)
        self._adverts: dict[int, KeyAdvert] = {}
        self._neighbours: frozenset[int] = frozenset()
        self._held: dict[int, tuple[Share, Share]] = {}
        self._revealed_for: frozenset[int] | None = None

    def advertise(self) -> KeyAdvert:
        """Step 1: the public keys of this session."""
        return KeyAdvert(self.index, public_bytes(self._cipher), public_bytes(self._mask))

    def share_keys(self, adverts: Mapping[int, KeyAdvert]) -> list[SealedShares]:
        """Step 2: share b_u and s_u^SK among this participant's neighbours in U1 = `adverts`."""
        check_adverts(adverts)
        if self.index not in adverts:
            raise SecAggError(f"participant {self.index} is not among the advertised keys")
        self._adverts = dict(adverts)
        self._neighbours = neighbours(adverts, self.params.neighbours, self.session)[self.index]
        peers = sorted(self._neighbours | {self.index})
        t = self.params.threshold_for(len(peers))
        points = [v + 1 for v in peers]
        seed_shares = split(self._self_seed, t, points)
        key_shares = split(private_bytes(self._mask), t, points)
        out = []
        for v, b_share, s_share in zip(peers, seed_shares, key_shares, strict=True):
            key = agree(
                self._cipher, adverts[v].cipher_pk, pair_info(self.session, b"share", self.index, v)
            )
            plain = (
                self.index.to_bytes(4, "big")
                + v.to_bytes(4, "big")
                + b_share.to_bytes()
                + s_share.to_bytes()
            )
            out.append(SealedShares(self.index, v, seal(key, plain, self.session)))
        return out

    def receive_shares(self, sealed: Iterable[SealedShares]) -> None:
        """Step 2 (receiving): keep the shares that neighbours encrypted to this participant."""
        for message in sealed:
            if message.receiver != self.index:
                continue
            u = message.sender
            if u not in self._neighbours | {self.index}:
                raise SecAggError(f"participant {u} sent shares but is not a neighbour")
            if len(message.ciphertext) != SEALED_BYTES:
                raise SecAggError(f"the sealed shares from {u} are not {SEALED_BYTES} bytes")
            key = agree(
                self._cipher,
                self._adverts[u].cipher_pk,
                pair_info(self.session, b"share", u, self.index),
            )
            plain = open_sealed(key, message.ciphertext, self.session)
            if plain[:8] != u.to_bytes(4, "big") + self.index.to_bytes(4, "big"):
                raise SecAggError(f"the sealed shares from {u} name another pair")
            b_share = Share.from_bytes(plain[8 : 8 + SHARE_BYTES])
            s_share = Share.from_bytes(plain[8 + SHARE_BYTES :])
            if b_share.x != self.index + 1 or s_share.x != self.index + 1:
                raise SecAggError(f"the shares from {u} are not at this participant's point")
            self._held[u] = (b_share, s_share)

    def _pairs(self, shared: Collection[int]) -> list[int]:
        if self.index not in shared:
            raise SecAggError(f"participant {self.index} is not among those who shared keys")
        pairs = sorted(v for v in self._neighbours if v in shared)
        missing = [v for v in [*pairs, self.index] if v not in self._held]
        if missing:
            raise SecAggError(f"participant {self.index} holds no shares from {missing}")
        return pairs

    def masked_input(self, vector: F64, shared: Collection[int]) -> bytes:
        """Step 3: the quantised update plus the self mask and the pairwise masks with U2."""
        y = quantise(vector, self.params)
        y += mask_vector(self._self_seed, y.size)
        for v in self._pairs(shared):
            seed = pair_seed(self._mask, self._adverts[v].mask_pk, self.session, self.index, v)
            if adds_pair_mask(self.index, v):
                y += mask_vector(seed, y.size)
            else:
                y -= mask_vector(seed, y.size)
        if self.params.modulus_bits < 32:
            y &= np.uint32(self.params.modulus - 1)
        return encode_masked(y)

    def reveal(self, shared: Collection[int], included: Collection[int]) -> Reveal:
        """Step 4: shares of b_u for included neighbours, of s_u^SK for dropped ones; once."""
        chosen = frozenset(included)
        if self._revealed_for is not None and self._revealed_for != chosen:
            raise SecAggError(
                f"participant {self.index} already revealed for another set of included updates"
            )
        holders = [*self._pairs(shared), self.index]
        t = self.params.threshold_for(len(self._neighbours) + 1)
        alive = len(chosen & (self._neighbours | {self.index}))
        if alive < t:
            raise SecAggError(
                f"only {alive} of participant {self.index}'s neighbourhood are included, "
                f"the threshold is {t}",
                reason="secagg-threshold",
            )
        self._revealed_for = chosen
        seeds = {u: self._held[u][0] for u in holders if u in chosen}
        keys = {u: self._held[u][1] for u in holders if u not in chosen}
        return Reveal(self.index, seeds, keys)
