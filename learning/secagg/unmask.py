"""Step 4 of the protocol on the aggregator's side, and the recomputation anyone can run.

`unmask` reconstructs, from the survivors' `Reveal`s, the self-mask seed b_u of every included
participant and the mask private key s_u^SK of every dropped neighbour of an included one
(docs/ARCHITECTURE.md "Secure aggregation"). A share counts only if its sender is a neighbour
of the participant it is about and it sits at the sender's own point, so no revealer can stand
in for another. Too few shares is a `SecAggError` with reason `secagg-threshold`: the height
then carries over. `masked_sum` recomputes the exact sum of the quantised updates from the
masked inputs, the public keys and the record; it is pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import numpy as np

from learning.secagg.graph import neighbours
from learning.secagg.params import SecAggError, SecAggParams
from learning.secagg.primitives import load_private, mask_vector, public_bytes
from learning.secagg.protocol import (
    KeyAdvert,
    Reveal,
    UnmaskRecord,
    adds_pair_mask,
    check_adverts,
    decode_masked,
    pair_seed,
)
from learning.secagg.quantize import U32
from learning.secagg.shamir import Share, combine


def _sets(
    adverts: Mapping[int, KeyAdvert], shared: Collection[int], included: Collection[int]
) -> tuple[frozenset[int], frozenset[int]]:
    check_adverts(adverts)
    u2, u3 = frozenset(shared), frozenset(included)
    if not u2 <= set(adverts):
        raise SecAggError("a participant shared keys without advertising them")
    if not u3 <= u2:
        raise SecAggError("a masked update is included from a participant that shared no keys")
    if not u3:
        raise SecAggError("no masked updates to aggregate")
    return u2, u3


def dropped_of(
    graph: Mapping[int, frozenset[int]], shared: frozenset[int], included: frozenset[int]
) -> frozenset[int]:
    """The participants whose pair masks are in the sum but whose input is not."""
    return frozenset(v for v in shared - included if graph[v] & included)


def unmask(
    params: SecAggParams,
    session: bytes,
    adverts: Mapping[int, KeyAdvert],
    shared: Collection[int],
    included: Collection[int],
    reveals: Iterable[Reveal],
) -> UnmaskRecord:
    """Recover b_u of the included and s_u^SK of the dropped from the revealed shares."""
    u2, u3 = _sets(adverts, shared, included)
    graph = neighbours(adverts, params.neighbours, session)
    seed_shares: dict[int, list[Share]] = {u: [] for u in u3}
    key_shares: dict[int, list[Share]] = {u: [] for u in u2 - u3}
    seen: set[int] = set()
    for reveal in reveals:
        s = reveal.sender
        if s in seen or s not in u2:
            raise SecAggError(f"a reveal from {s} is a duplicate or from a non-participant")
        seen.add(s)
        for table, pool in ((reveal.seed_shares, seed_shares), (reveal.key_shares, key_shares)):
            for about, share in table.items():
                holder = s in graph[about] or s == about
                if about not in pool or not holder or share.x != s + 1:
                    raise SecAggError(
                        f"participant {s} revealed a share it cannot hold for {about}"
                    )
                pool[about].append(share)
    seeds = {
        u: combine(
            seed_shares[u],
            params.threshold_for(len(graph[u]) + 1),
            f"the self-mask seed of participant {u}",
        )
        for u in sorted(u3)
    }
    keys = {
        v: combine(
            key_shares[v],
            params.threshold_for(len(graph[v]) + 1),
            f"the mask key of dropped participant {v}",
        )
        for v in sorted(dropped_of(graph, u2, u3))
    }
    record = UnmaskRecord(seeds, keys)
    _check_record(adverts, graph, u2, u3, record)
    return record


def _check_record(
    adverts: Mapping[int, KeyAdvert],
    graph: Mapping[int, frozenset[int]],
    u2: frozenset[int],
    u3: frozenset[int],
    record: UnmaskRecord,
) -> None:
    if set(record.self_seeds) != u3:
        raise SecAggError("the unmasking record's self-mask seeds are not those of the included")
    if set(record.dropped_keys) != dropped_of(graph, u2, u3):
        raise SecAggError("the unmasking record's dropped keys are not those of the dropped")
    for v, raw in record.dropped_keys.items():
        if public_bytes(load_private(raw)) != adverts[v].mask_pk:
            raise SecAggError(f"the recovered mask key of {v} does not match its advertised key")


def masked_sum(
    params: SecAggParams,
    session: bytes,
    adverts: Mapping[int, KeyAdvert],
    shared: Collection[int],
    masked: Mapping[int, bytes],
    record: UnmaskRecord,
    length: int,
) -> U32:
    """The exact sum mod 2^b of the included quantised updates: remove every remaining mask."""
    u2, u3 = _sets(adverts, shared, masked)
    graph = neighbours(adverts, params.neighbours, session)
    _check_record(adverts, graph, u2, u3, record)
    total = np.zeros(length, dtype=np.uint32)
    for u in sorted(u3):
        total += decode_masked(masked[u], length)
        total -= mask_vector(record.self_seeds[u], length)
    for v in sorted(record.dropped_keys):
        private = load_private(record.dropped_keys[v])
        for u in sorted(graph[v] & u3):
            pad = mask_vector(pair_seed(private, adverts[u].mask_pk, session, u, v), length)
            if adds_pair_mask(u, v):
                total -= pad
            else:
                total += pad
    if params.modulus_bits < 32:
        total &= np.uint32(params.modulus - 1)
    return total
