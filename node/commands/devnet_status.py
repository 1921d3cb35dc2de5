"""`bcfl devnet status`: one line per devnet node (height, round, peers, metric, state)."""

from __future__ import annotations

import argparse

from node.commands.devnet_up import DEFAULT_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"devnet directory (default {DEFAULT_DIR})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from devnet.launcher import DevnetError, load_nodes, snapshot
    from devnet.monitoring import render_rows
    from node.errors import UserError

    try:
        nodes = load_nodes(Path(args.dir).expanduser().resolve())
    except DevnetError as exc:
        raise UserError(str(exc)) from None
    rows = snapshot(nodes)
    print(json.dumps(rows, indent=2) if args.json else render_rows(rows))
    return 0
