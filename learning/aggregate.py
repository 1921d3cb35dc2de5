"""Aggregation rules as pure, byte-deterministic functions (in the style of Flower's aggregate.py).

Every validator recomputes the proposer's candidate from the same update blobs and must get the
same bytes, whatever order the blobs arrived in. Hence:
1. inputs are sorted by blob hash (then sample count) before anything else;
2. all arithmetic is float64, elementwise or along the update axis in that fixed order, and only
   the final `global + aggregate` is rounded to float32;
3. work is done in fixed-size coordinate chunks, read straight from each blob (in memory or on
   disk), so memory stays at the output plus n x CHUNK float64 values (n x OUTPUT_CHUNK for the
   coordinate-wise pass that writes the output, the only pass of plain fedavg) without changing
   a single bit of the result.
Reductions across coordinates (norms, Krum distances) use NumPy's summation, which is fixed for
one NumPy build; they only decide clipping factors and Krum's selection.

Rules, applied to the update DELTAS (see trainer.py):
- `fedavg`: sample-weighted mean (McMahan et al. 2017).
- `median`: coordinate-wise median (Yin et al. 2018).
- `trimmed-mean`: coordinate-wise mean after dropping the floor(trim_fraction * n) largest and
  smallest values (Yin et al. 2018).
- `multi-krum`: score each update by the summed squared distance to its n - f - 2 nearest
  neighbours, keep the m lowest scores and average them sample-weighted (Blanchard et al. 2017);
  f defaults to the largest value with n >= 2f + 3, m to n - f.
- `clip_norm` (any rule): scale each delta down to at most that L2 norm first.
- `median_weight_cap` (fedavg, multi-krum): a site's weight is its sample count clipped to the
  median count of the round's updates, so a site that claims more samples than it has cannot
  own the average (docs/THREAT-MODEL.md "Hijack by sample count"). With equal sites the
  weights are unchanged; a site larger than the median weighs as much as the median site.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from learning.serialize import Blob, TensorView, safetensors_header, source_hash

RULES = ("fedavg", "median", "trimmed-mean", "multi-krum")
CHUNK = 1 << 20  # coordinates per chunk; part of the determinism contract, do not vary per call
# Coordinates per chunk of the pass that writes the output. That pass is coordinate-wise (each
# output coordinate depends on that coordinate of the updates alone), so its chunking changes
# no bit of the result; it only bounds the n x OUTPUT_CHUNK float64 block and its temporaries
# (512 KiB an update) instead of n x CHUNK (8 MiB an update). The norms (clip_norm) and Krum's
# distances sum across coordinates, so they keep CHUNK.
OUTPUT_CHUNK = 1 << 16

F64 = npt.NDArray[np.float64]


class AggregationError(ValueError):
    """The inputs cannot be aggregated (no updates, a hash mismatch, a shape mismatch)."""


@dataclass(frozen=True, slots=True)
class AggregationRule:
    """An aggregation rule and its parameters, as named in the genesis."""

    name: str = "fedavg"
    trim_fraction: float = 0.25
    krum_f: int | None = None
    krum_m: int | None = None
    clip_norm: float | None = None
    median_weight_cap: bool = True

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ValueError(f"aggregation rule must be one of {', '.join(RULES)}")
        if not 0 <= self.trim_fraction < 0.5:
            raise ValueError("trim_fraction must be in [0, 0.5)")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError("clip_norm must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as a plain map for the genesis (absent options are omitted)."""
        out: dict[str, Any] = {
            "name": self.name,
            "trim_fraction": float(self.trim_fraction),
            "median_weight_cap": self.median_weight_cap,
        }
        if self.krum_f is not None:
            out["krum_f"] = self.krum_f
        if self.krum_m is not None:
            out["krum_m"] = self.krum_m
        if self.clip_norm is not None:
            out["clip_norm"] = float(self.clip_norm)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregationRule:
        """Build a rule from a genesis map."""
        clip = data.get("clip_norm")
        return cls(
            name=str(data.get("name", "fedavg")),
            trim_fraction=float(data.get("trim_fraction", 0.25)),
            krum_f=None if data.get("krum_f") is None else int(data["krum_f"]),
            krum_m=None if data.get("krum_m") is None else int(data["krum_m"]),
            clip_norm=None if clip is None else float(clip),
            median_weight_cap=bool(data.get("median_weight_cap", True)),
        )


UpdateInput = tuple[bytes, Blob, int]  # (blob hash, update blob or its source, number of samples)


def aggregate(
    rule: AggregationRule | str, global_blob: Blob, updates: Sequence[UpdateInput]
) -> bytearray:
    """Return the candidate model blob: global + rule(update deltas). Same bytes for any order.

    The updates are read a chunk of coordinates at a time (from memory or from files), and the
    result is written straight into one output buffer, which is returned as it is (no copy into
    a `bytes`), so the working memory is the output plus n x CHUNK float64 values (n x
    OUTPUT_CHUNK for plain fedavg, median and trimmed mean), whatever the model size.
    """
    if isinstance(rule, str):
        rule = AggregationRule(name=rule)
    if not updates:
        raise AggregationError("no updates to aggregate")
    ordered = sorted(updates, key=lambda u: (bytes(u[0]), int(u[2])))
    base = TensorView(global_blob)
    names = base.names
    deltas: list[TensorView] = []
    for digest, blob, n_samples in ordered:
        if source_hash(blob) != bytes(digest):
            raise AggregationError("an update blob does not match its hash")
        if n_samples <= 0:
            raise AggregationError("an update claims no training samples")
        delta = TensorView(blob)
        if delta.names != names or any(delta.shape(k) != base.shape(k) for k in names):
            raise AggregationError("an update does not match the model's tensors")
        deltas.append(delta)
    n = len(deltas)
    spans = list(base.spans(CHUNK))

    def rows(name: str, start: int, stop: int) -> F64:
        block = np.empty((n, stop - start), dtype=np.float64)
        for i, d in enumerate(deltas):
            block[i] = d.read(name, start, stop)  # float32 -> float64 in place, exact
        return block

    scale = np.ones(n, dtype=np.float64)
    if rule.clip_norm is not None:
        sq = np.zeros(n, dtype=np.float64)
        for span in spans:
            block = rows(*span)
            sq += np.sum(block * block, axis=1)
        norms = np.sqrt(sq)
        for i in range(n):
            if norms[i] > rule.clip_norm:
                scale[i] = rule.clip_norm / norms[i]

    samples = sample_weights(rule, [u[2] for u in ordered])
    selected = list(range(n))
    if rule.name == "multi-krum":
        selected = _krum_select(rule, n, spans, rows, scale)
    weights = np.zeros(n, dtype=np.float64)
    weights[selected] = samples[selected] / samples[selected].sum()
    trim = int(np.floor(rule.trim_fraction * n))

    header = safetensors_header({name: base.shape(name) for name in names})
    out = bytearray(len(header) + 4 * sum(base.count(name) for name in names))
    out[: len(header)] = header
    offsets, position = {}, len(header)
    for name in names:
        offsets[name] = position
        position += 4 * base.count(name)
    for name, start, stop in base.spans(OUTPUT_CHUNK):
        block = rows(name, start, stop)
        block *= scale[:, None]
        if rule.name == "median":
            agg = np.median(block, axis=0)
        elif rule.name == "trimmed-mean":
            kept = np.sort(block, axis=0)[trim : n - trim]
            agg = np.zeros(block.shape[1], dtype=np.float64)
            for row in kept:
                agg += row
            agg /= kept.shape[0]
        else:  # fedavg, and multi-krum over its selection
            agg = np.zeros(block.shape[1], dtype=np.float64)
            for i in selected:
                agg += weights[i] * block[i]
        g = base.read(name, start, stop).astype(np.float64)
        target = np.frombuffer(
            out, dtype="<f4", count=stop - start, offset=offsets[name] + 4 * start
        )
        target[:] = (g + agg).astype(np.float32)
    return out


def sample_weights(rule: AggregationRule, counts: Sequence[int]) -> F64:
    """The unnormalised weight of each update: its claimed sample count, clipped to the round's
    median claim under `median_weight_cap`."""
    samples = np.array(counts, dtype=np.float64)
    if rule.median_weight_cap and len(samples):
        samples = np.minimum(samples, float(np.median(samples)))
    return samples


def _krum_select(
    rule: AggregationRule,
    n: int,
    spans: list[tuple[str, int, int]],
    rows: Any,
    scale: F64,
) -> list[int]:
    f = rule.krum_f if rule.krum_f is not None else max(0, (n - 3) // 2)
    m = rule.krum_m if rule.krum_m is not None else n - f
    m = max(1, min(m, n))
    neighbours = n - f - 2
    if neighbours < 1:
        return list(range(n))
    dist = np.zeros((n, n), dtype=np.float64)
    for span in spans:
        block = rows(*span) * scale[:, None]
        for i in range(n):
            diff = block[i + 1 :] - block[i]
            d = np.sum(diff * diff, axis=1)
            dist[i, i + 1 :] += d
            dist[i + 1 :, i] += d
    scores = []
    for i in range(n):
        others = np.sort(np.delete(dist[i], i))
        scores.append((float(np.sum(others[:neighbours])), i))
    scores.sort()
    return sorted(i for _score, i in scores[:m])
