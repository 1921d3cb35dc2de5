"""Attacks for testing robustness (simulators and Byzantine devnet nodes).

Model-poisoning attacks rewrite an honest update DELTA d = local - global:
- `signflip`: -5 d (the update global - 5 (local - global));
- `scale`: 10 d (a boosted update, Bhagoji et al. 2019);
- `noise`: Gaussian noise N(0, 1) per coordinate instead of an update;
- `freerider`: zeros (returns the global model unchanged while claiming its samples);
- `drift`: d + Gaussian noise of norm `factor` x |d| (default 1): still pointing the honest
  way (cosine about 0.7) and short enough to pass screening, it makes each aggregate it joins a
  little worse (slow drift, docs/THREAT-MODEL.md).
`labelflip` is a data-poisoning attack: the site trains honestly on flipped labels
(`TrainConfig(label_flip=True)`), so `attack_update` leaves its update as it is.
`factor` overrides the multiplier of signflip/scale and the noise standard deviation.
"""

from __future__ import annotations

import numpy as np

from learning.serialize import bytes_to_weights, weights_to_bytes

ATTACKS = ("signflip", "scale", "noise", "labelflip", "freerider", "drift")
DEFAULT_FACTOR = {"signflip": 5.0, "scale": 10.0, "noise": 1.0, "drift": 1.0}


def attack_update(
    kind: str, global_blob: bytes, update_blob: bytes, seed: int, factor: float | None = None
) -> bytes:
    """Return the poisoned version of an honest update blob."""
    if kind not in ATTACKS:
        raise ValueError(f"unknown attack {kind!r} (use {', '.join(ATTACKS)})")
    del global_blob  # deltas are relative to it already; kept for a stable call signature
    if kind == "labelflip":
        return update_blob
    delta = bytes_to_weights(update_blob)
    k = DEFAULT_FACTOR.get(kind, 0.0) if factor is None else factor
    rng = np.random.default_rng([seed, 0xBAD])
    out = {}
    if kind == "drift":
        norm = float(
            np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in delta.values()))
        )
        size = sum(v.size for v in delta.values())
        per_coordinate = k * norm / max(1.0, float(np.sqrt(size)))
        for name in sorted(delta):
            d = delta[name].astype(np.float64)
            out[name] = (d + rng.normal(0.0, per_coordinate, d.shape)).astype(np.float32)
        return weights_to_bytes(out)
    for name in sorted(delta):
        d = delta[name].astype(np.float64)
        if kind == "signflip":
            d = -k * d
        elif kind == "scale":
            d = k * d
        elif kind == "noise":
            d = rng.normal(0.0, k, d.shape)
        else:  # freerider
            d = np.zeros_like(d)
        out[name] = d.astype(np.float32)
    return weights_to_bytes(out)


def parse_attack(spec: str) -> tuple[str, int]:
    """Parse "KIND:COUNT" (e.g. "signflip:2") into (kind, count)."""
    kind, _, count = spec.partition(":")
    if kind not in ATTACKS or not count.isdigit():
        raise ValueError(f"attack must be KIND:COUNT with KIND one of {', '.join(ATTACKS)}")
    return kind, int(count)
