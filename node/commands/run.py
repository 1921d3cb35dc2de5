"""`bcfl run --home DIR`: run the node daemon of a home until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", required=True, help="node home created by bcfl init")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import trio

    from node.daemon import run_node
    from node.memory import release_large_buffers_promptly

    release_large_buffers_promptly()
    trio.run(run_node, Path(args.home))
    return 0
