"""Who pairs with whom: all pairs (Bonawitz et al. 2017) or a SecAgg+ graph (Bell et al. 2020).

SecAgg+ replaces the complete graph by a random k-regular one, so each trainer agrees keys,
expands masks and holds shares for O(log n) neighbours instead of n - 1. As in Bell et al.,
the graph is a Harary graph (each node joined to the k/2 next on each side of a ring) on a
random relabelling of the participants (an odd k is rounded up to k + 1, the Harary graph of
even degree). The relabelling is derived from the public session
(chain id, height, parent block; `primitives.session_id`), so every node, observer and
`bcfl chain verify` derives the same graph and nobody chooses its neighbours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def neighbours(ids: Iterable[int], degree: int, session: bytes) -> dict[int, frozenset[int]]:
    """Map each participant to its neighbours; `degree` 0 (or >= n - 1) means everybody else.

    Each participant gets 2 ceil(k / 2) neighbours (everybody else when that reaches n - 1).
    """
    members = sorted(set(ids))
    n = len(members)
    if degree <= 0 or degree >= n - 1:
        return {u: frozenset(v for v in members if v != u) for u in members}
    ring = sorted(
        members,
        key=lambda u: hashlib.sha256(
            b"bcfl-secagg-graph" + session + u.to_bytes(4, "big")
        ).digest(),
    )
    half = (degree + 1) // 2
    out: dict[int, set[int]] = {u: set() for u in members}
    for pos, u in enumerate(ring):
        for step in range(1, half + 1):
            v = ring[(pos + step) % n]
            out[u].add(v)
            out[v].add(u)
    return {u: frozenset(vs) for u, vs in out.items()}
