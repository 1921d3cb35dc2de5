"""`bcfl devnet down`: stop every node of a devnet started by `bcfl devnet up`."""

from __future__ import annotations

import argparse

from node.commands.devnet_up import DEFAULT_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"devnet directory (default {DEFAULT_DIR})"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from devnet.launcher import down

    stopped = down(Path(args.dir).expanduser().resolve())
    print(f"stopped {stopped} node(s)")
    return 0
