"""`bcfl report --home DIR --out FILE.png`: plot a node's chain (see telemetry/report.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, help="node home directory whose chain to plot")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument(
        "--blocks-json",
        type=Path,
        help="plot these blocks instead (a JSON list of blocks, or `bcfl devnet up --json` output)",
    )
    parser.add_argument("--metric-name", default="metric", help="axis label of the model metric")


def run(args: argparse.Namespace) -> int:
    from telemetry.report import ReportError, blocks_from_json, draw_report, load_blocks

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
