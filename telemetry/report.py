"""`bcfl report`: a one-page PNG of a chain's learning history.

Input is a list of plain per-block dicts, one per committed block, oldest first:

    {"height": 7, "time": 1767000000.5,          # unix seconds of the block header
     "metric": 0.981,                             # task metric of the block's model (None if unknown)
     "carry_over": False,                         # True: the block kept the previous model
     "contributions": {"site-a": 120, ...},       # samples each participant contributed in this block
     "reputation": {"site-a": 1.25, ...}}         # ledger reputation after this block

Telemetry knows nothing of a node home: `bcfl report` (node/commands/report.py)
reads the chain and passes these plain dicts in. `blocks_from_json` also reads the
`--json` output of `bcfl devnet up` (blocks with `height`, `metric`, `carry_over`,
`phases`), where missing fields just leave their panel empty. Panels: model metric
per block (carry-over blocks hollow), block interval, cumulative samples contributed
per participant, and reputation per participant. Drawn with matplotlib's Agg backend
(no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Block = dict[str, Any]


class ReportError(Exception):
    """The input cannot be plotted (one sentence for the user)."""


def blocks_from_json(value: Any) -> list[Block]:
    """Blocks from a JSON value: a list of block dicts, or an object with a `blocks` list."""
    if isinstance(value, Mapping):
        value = value.get("blocks")
    if not isinstance(value, list):
        raise ReportError("the JSON must be a list of blocks or an object with a 'blocks' list")
    blocks = [_normalise(b, i) for i, b in enumerate(value)]
    return sorted(blocks, key=lambda b: b["height"])


def _normalise(raw: Any, index: int) -> Block:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("height"), int):
        raise ReportError(f"block {index} must be an object with an integer 'height'")
    metric = raw.get("metric")
    phases = raw.get("phases") or {}
    return {
        "height": raw["height"],
        "time": _number(raw.get("time")),
        "metric": _number(metric),
        "loss": _number(raw.get("loss")),
        "carry_over": bool(raw.get("carry_over", False)),
        "contributions": {str(k): float(v) for k, v in (raw.get("contributions") or {}).items()},
        "reputation": {str(k): float(v) for k, v in (raw.get("reputation") or {}).items()},
        "block_interval": _number(phases.get("block_interval")),
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def block_intervals(blocks: Sequence[Block]) -> list[tuple[int, float]]:
    """(height, seconds since the previous block): header times, else the phases' block_interval."""
    out = []
    for previous, block in zip(blocks, blocks[1:], strict=False):
        if block.get("time") is not None and previous.get("time") is not None:
            out.append((block["height"], block["time"] - previous["time"]))
    if out:
        return out
    return [(b["height"], b["block_interval"]) for b in blocks if b.get("block_interval")]


def draw_report(
    blocks: Sequence[Block], out: Path, *, metric_name: str = "metric", title: str | None = None
) -> Path:
    """Draw the four panels of `blocks` into the PNG `out`; returns `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not blocks:
        raise ReportError("the chain has no committed blocks to plot")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), dpi=100)
    (ax_metric, ax_interval), (ax_contrib, ax_reputation) = axes
    first, last = blocks[0]["height"], blocks[-1]["height"]
    fig.suptitle(title or f"bcfl chain: {len(blocks)} blocks, heights {first} to {last}")

    scored = [b for b in blocks if b["metric"] is not None]
    ax_metric.plot([b["height"] for b in scored], [b["metric"] for b in scored], color="tab:blue")
    model = [b for b in scored if not b["carry_over"]]
    carried = [b for b in scored if b["carry_over"]]
    ax_metric.scatter([b["height"] for b in model], [b["metric"] for b in model], label="model")
    ax_metric.scatter(
        [b["height"] for b in carried],
        [b["metric"] for b in carried],
        facecolors="none",
        edgecolors="tab:gray",
        label="carry-over",
    )
    ax_metric.set(
        title=f"Global model {metric_name} per block", xlabel="height", ylabel=metric_name
    )
    ax_metric.legend(loc="lower right")
    with_loss = [b for b in blocks if b.get("loss") is not None]
    if with_loss:
        # small validation splits saturate AUC early; the loss keeps showing progress
        ax_loss = ax_metric.twinx()
        ax_loss.plot(
            [b["height"] for b in with_loss],
            [b["loss"] for b in with_loss],
            color="tab:red",
            linestyle="--",
            label="validation loss",
        )
        ax_loss.set_ylabel("validation loss (median of eval reports)", color="tab:red")

    intervals = block_intervals(blocks)
    ax_interval.bar([h for h, _ in intervals], [s for _, s in intervals], color="tab:orange")
    ax_interval.set(title="Block interval", xlabel="height", ylabel="seconds")

    heights = [b["height"] for b in blocks]
    participants = sorted({p for b in blocks for p in (*b["contributions"], *b["reputation"])})
    for participant in participants:
        total, cumulative = 0.0, []
        for b in blocks:
            total += b["contributions"].get(participant, 0.0)
            cumulative.append(total)
        if total:
            ax_contrib.step(heights, cumulative, where="post", label=participant)
        points = [
            (b["height"], b["reputation"][participant])
            for b in blocks
            if participant in b["reputation"]
        ]
        if points:
            ax_reputation.plot(*zip(*points, strict=True), marker=".", label=participant)
    ax_contrib.set(title="Samples contributed (cumulative)", xlabel="height", ylabel="samples")
    ax_reputation.set(title="Reputation", xlabel="height", ylabel="reputation")
    for ax in (ax_contrib, ax_reputation):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data in this chain", ha="center", transform=ax.transAxes)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


def synthetic_blocks(n: int = 30, participants: int = 4, start_time: float = 1.7e9) -> list[Block]:
    """A plausible chain for tests and previews: rising metric, a carry-over every 7th block."""
    blocks: list[Block] = []
    reputation = dict.fromkeys((f"site-{i}" for i in range(participants)), 1.0)
    metric, now = 0.80, start_time
    for height in range(1, n + 1):
        carry_over = height % 7 == 0
        now += 1.0 + 0.3 * math.sin(height)
        contributions = {} if carry_over else {p: 50.0 + 10 * i for i, p in enumerate(reputation)}
        if not carry_over:
            metric += (0.99 - metric) * 0.2
            for i, p in enumerate(reputation):
                reputation[p] += 0.04 * i if i else -0.05  # site-0 plays a bad contributor
        blocks.append(
            {
                "height": height,
                "time": now,
                "metric": metric,
                "carry_over": carry_over,
                "contributions": contributions,
                "reputation": dict(reputation),
            }
        )
    return blocks
