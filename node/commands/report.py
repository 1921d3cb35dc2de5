"""`bcfl report --home DIR --out FILE.png`: plot a node's chain (drawn by telemetry/report.py).

This command is where a node home is read: `load_blocks` turns the home's committed chain
into the plain per-block dicts that `telemetry.report.draw_report` plots, so that telemetry
imports nothing from node.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median
from typing import Any

from node.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, help="node home directory whose chain to plot")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument(
        "--blocks-json",
        type=Path,
        help="plot these blocks instead (a JSON list of blocks, or `bcfl devnet up --json` output)",
    )
    parser.add_argument("--metric-name", default="metric", help="axis label of the model metric")


def load_blocks(home: Path) -> list[dict[str, Any]]:
    """The committed blocks of the node at `home` as report dicts (telemetry/report.py).

    Read straight from the home's chain store (works while the node runs or is stopped).
    `metric` is the median of the validators' eval reports on the block's model (their local
    validation splits); a carry-over block keeps its parent's model and so its metric.
    `reputation` comes from the ledger snapshot stored with each block.
    """
    from node.block_json import block_metric
    from node.chain import Chain
    from node.genesis_files import load_genesis
    from node.home import NodeHome
    from node.store import ChainStore

    node_home = NodeHome(Path(home))
    if not node_home.root.is_dir():
        raise UserError(f"{home} is not a node home directory")
    if not node_home.db_path.is_file():
        raise UserError(f"no chain to plot in {home}: the node has not stored any block yet")
    members = [m.name for m in load_genesis(node_home).validators]

    def name(index: int) -> str:
        return members[index] if 0 <= index < len(members) else f"member-{index}"

    store = ChainStore.open(node_home)
    blocks: list[dict[str, Any]] = []
    metric: float | None = None
    loss: float | None = None
    try:
        chain = Chain(store)
        for block, _cert in chain.committed_range():
            height = int(block.height)
            summary = block_metric(block)
            if summary is not None:
                metric = summary["after"]
                loss = median(r.loss_after for r in block.eval_reports)
            contributions: dict[str, float] = {}
            if not block.is_carry_over:
                for receipt in block.receipts:
                    who = name(receipt.author)
                    contributions[who] = contributions.get(who, 0.0) + receipt.n_samples
            ledger = chain.ledger(height)
            reputation = (
                {}
                if ledger is None
                else {name(i): float(r.reputation) for i, r in enumerate(ledger.participants)}
            )
            blocks.append(
                {
                    "height": height,
                    "time": block.header.time_ms / 1000.0,
                    "metric": metric,
                    "loss": loss,
                    "carry_over": block.is_carry_over,
                    "contributions": contributions,
                    "reputation": reputation,
                }
            )
    finally:
        store.close()
    return blocks


def run(args: argparse.Namespace) -> int:
    from telemetry.report import ReportError, blocks_from_json, draw_report

    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {args.out}")
    try:
        if args.blocks_json is not None:
            try:
                value = json.loads(args.blocks_json.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UserError(f"cannot read {args.blocks_json} as JSON: {exc}") from None
            blocks = blocks_from_json(value)
        elif args.home is not None:
            blocks = load_blocks(args.home)
        else:
            raise UserError("give --home DIR (a node home) or --blocks-json FILE")
        draw_report(blocks, args.out, metric_name=args.metric_name)
    except ReportError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {args.out} ({len(blocks)} blocks)")
    return 0
