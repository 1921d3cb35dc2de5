"""Canonical CBOR for the protocol's messages, decoded strictly with size limits.

What a peer sends in the protocol (a key advert, sealed shares, a reveal) and the public
transcript of a height (adverts, U2 and the recovered secrets: `Transcript`) are plain CBOR
arrays of integers and byte strings. Decoding refuses, with one sentence and the reason
`secagg-malformed`, anything oversized, of the wrong shape, with a duplicate or out-of-range
participant index or a field of the wrong length; nothing from a peer is unpickled or imported.
The masked updates themselves are blobs (protocol.py `encode_masked`), fetched and hash-checked
like any update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from learning.secagg.fields import MALFORMED, MAX_PARTICIPANTS, loads
from learning.secagg.fields import index as _index
from learning.secagg.fields import malformed as _fail
from learning.secagg.fields import pairs as _pairs
from learning.secagg.fields import raw as _raw
from learning.secagg.params import SecAggError
from learning.secagg.primitives import KEY_BYTES
from learning.secagg.protocol import SEALED_BYTES, KeyAdvert, Reveal, SealedShares, UnmaskRecord
from learning.secagg.shamir import SHARE_BYTES, Share

VERSION = 1
_REASON = MALFORMED


@dataclass(frozen=True, slots=True)
class Transcript:
    """The public record of one height's session: enough, with the masked blobs, to recompute."""

    adverts: Mapping[int, KeyAdvert]
    shared: frozenset[int]
    record: UnmaskRecord


def _loads(data: bytes, limit: int, what: str) -> Any:
    return loads(data, what, limit)


def encode_advert(advert: KeyAdvert) -> bytes:
    """[version, index, cipher_pk, mask_pk]."""
    return cbor2.dumps([VERSION, advert.index, advert.cipher_pk, advert.mask_pk], canonical=True)


def decode_advert(data: bytes) -> KeyAdvert:
    """The inverse of `encode_advert`, strictly."""
    value = _loads(data, 128, "key advert")
    if type(value) is not list or len(value) != 4 or value[0] != VERSION:
        raise _fail("key advert")
    return KeyAdvert(
        _index(value[1], "key advert"),
        _raw(value[2], KEY_BYTES, "key advert"),
        _raw(value[3], KEY_BYTES, "key advert"),
    )


def encode_sealed(sender: int, sealed: list[SealedShares]) -> bytes:
    """[version, sender, [[receiver, ciphertext], ...]] for one sender's shares."""
    if any(m.sender != sender for m in sealed):
        raise SecAggError("sealed shares of several senders cannot travel in one message")
    body = sorted([m.receiver, m.ciphertext] for m in sealed)
    return cbor2.dumps([VERSION, sender, body], canonical=True)


def decode_sealed(data: bytes) -> list[SealedShares]:
    """The inverse of `encode_sealed`, strictly (one ciphertext per receiver, fixed size)."""
    value = _loads(data, 64 + MAX_PARTICIPANTS * (SEALED_BYTES + 8), "share message")
    if type(value) is not list or len(value) != 3 or value[0] != VERSION:
        raise _fail("share message")
    sender = _index(value[1], "share message")
    pairs = _pairs(value[2], SEALED_BYTES, "share message")
    return [SealedShares(sender, receiver, ct) for receiver, ct in sorted(pairs.items())]


def encode_reveal(reveal: Reveal) -> bytes:
    """[version, sender, [[about, seed share]...], [[about, key share]...]]."""
    seeds = sorted([u, s.to_bytes()] for u, s in reveal.seed_shares.items())
    keys = sorted([u, s.to_bytes()] for u, s in reveal.key_shares.items())
    return cbor2.dumps([VERSION, reveal.sender, seeds, keys], canonical=True)


def decode_reveal(data: bytes) -> Reveal:
    """The inverse of `encode_reveal`; a participant is about one kind of share, never both."""
    value = _loads(data, 64 + 2 * MAX_PARTICIPANTS * (SHARE_BYTES + 8), "reveal")
    if type(value) is not list or len(value) != 4 or value[0] != VERSION:
        raise _fail("reveal")
    sender = _index(value[1], "reveal")
    seeds = _pairs(value[2], SHARE_BYTES, "reveal")
    keys = _pairs(value[3], SHARE_BYTES, "reveal")
    if set(seeds) & set(keys):
        raise SecAggError(
            f"the reveal of {sender} holds both shares for one participant", reason=_REASON
        )
    return Reveal(
        sender,
        {u: Share.from_bytes(s) for u, s in seeds.items()},
        {u: Share.from_bytes(s) for u, s in keys.items()},
    )


def encode_transcript(transcript: Transcript) -> bytes:
    """[version, adverts, U2, self seeds, dropped keys], every list sorted by index."""
    adverts = [[i, a.cipher_pk, a.mask_pk] for i, a in sorted(transcript.adverts.items())]
    seeds = [[i, s] for i, s in sorted(transcript.record.self_seeds.items())]
    keys = [[i, k] for i, k in sorted(transcript.record.dropped_keys.items())]
    return cbor2.dumps([VERSION, adverts, sorted(transcript.shared), seeds, keys], canonical=True)


def decode_transcript(data: bytes) -> Transcript:
    """The inverse of `encode_transcript`, strictly."""
    value = _loads(data, 64 + MAX_PARTICIPANTS * 4 * (KEY_BYTES + 8), "transcript")
    if type(value) is not list or len(value) != 5 or value[0] != VERSION:
        raise _fail("transcript")
    if type(value[1]) is not list or len(value[1]) > MAX_PARTICIPANTS:
        raise _fail("transcript")
    adverts: dict[int, KeyAdvert] = {}
    for item in value[1]:
        if type(item) is not list or len(item) != 3:
            raise _fail("transcript")
        i = _index(item[0], "transcript")
        if i in adverts:
            raise _fail("transcript")
        adverts[i] = KeyAdvert(
            i, _raw(item[1], KEY_BYTES, "transcript"), _raw(item[2], KEY_BYTES, "transcript")
        )
    if type(value[2]) is not list:
        raise _fail("transcript")
    shared = [_index(i, "transcript") for i in value[2]]
    if len(set(shared)) != len(shared):
        raise _fail("transcript")
    record = UnmaskRecord(
        _pairs(value[3], KEY_BYTES, "transcript"), _pairs(value[4], KEY_BYTES, "transcript")
    )
    return Transcript(adverts, frozenset(shared), record)
