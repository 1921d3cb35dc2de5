"""`bcfl chain verify --home DIR [--json]`: replay the stored chain from genesis (node/verify.py).

Exit 0 when every height verifies; exit 1 with one message naming the first bad height.
Aggregations whose blobs were pruned are listed as skipped, not failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", required=True, type=Path, help="node home directory")
    parser.add_argument(
        "--no-aggregation", action="store_true", help="skip replaying the aggregation (faster)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from node.home import NodeHome
    from node.verify import verify_chain

    home = NodeHome(args.home)
    if not home.genesis_path.is_file() and not home.db_path.is_file():
        raise UserError(f"{args.home} is not a node home with a chain (no genesis.cbor)")
    result = verify_chain(home, replay_aggregation=not args.no_aggregation)
    if args.json:
        print(json.dumps(result.to_json()))
    elif result.ok:
        print(
            f"chain {result.chain_id} verified: {result.blocks} blocks "
            f"({result.model_blocks} model, {result.carry_over_blocks} carry-over); "
            f"aggregation replayed at {len(result.replayed)} heights, "
            f"skipped at {len(result.skipped)}"
        )
        if result.skipped:
            heights = [h for h, _ in result.skipped]
            first_height, first_reason = result.skipped[0]
            print(
                f"  aggregation skipped at heights {_ranges(heights)} (blobs pruned by the "
                f"storage policy; first: height {first_height}, {first_reason})"
            )
    if result.problem is not None:
        print(f"bcfl: chain verify failed at {result.problem}", file=sys.stderr)
        return 1
    return 0


def _ranges(heights: list[int]) -> str:
    """ "1-3, 7, 9-10" for [1, 2, 3, 7, 9, 10]."""
    spans: list[list[int]] = []
    for height in sorted(heights):
        if spans and height == spans[-1][1] + 1:
            spans[-1][1] = height
        else:
            spans.append([height, height])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
