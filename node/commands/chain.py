"""`bcfl chain show [HEIGHT] --home DIR [--json]`: the committed chain of a node home.

Reads the home's store directly, so it works whether or not the node is running. Without a
height: one line per block (or `--last N`); with one: the whole block; height 0 is the genesis.
The JSON is the same as the node's HTTP API (`/chain`, `/chain/<H>`, built by
node/block_json.py). Blocks are read through `node.chain.Chain`, which checks that each stored
block matches its recorded hash and certificate; nothing more is verified here: that is
`bcfl chain verify`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from node.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("height", nargs="?", type=int, help="one block (0: the genesis)")
    parser.add_argument("--home", required=True, type=Path, help="node home directory")
    parser.add_argument("--last", type=int, default=None, help="only the last N blocks")
    parser.add_argument("--json", action="store_true", help="print JSON")


def open_chain(home: Path) -> tuple[Any, Any]:
    """(genesis or None, ChainStore) of a home; UserError if the home holds no chain."""
    from node.genesis_files import GenesisFileError, load_genesis
    from node.home import NodeHome
    from node.store import ChainStore

    node_home = NodeHome(home)
    if not node_home.db_path.is_file():
        raise UserError(
            f"{home} holds no chain yet (no {node_home.db_path.name}); is it a node home that ran?"
        )
    try:
        genesis = load_genesis(node_home)
    except GenesisFileError:
        genesis = None
    return genesis, ChainStore.open(node_home)


def _short(hex_hash: str) -> str:
    return hex_hash[:12]


def _line(s: dict[str, Any]) -> str:
    metric = s["metric"]
    shown = f"{metric['after']:.4f}" if metric else "-"
    what = (
        f"{s['updates']} updates"
        if s["kind"] == "model"
        else f"carry-over: {s['carry_over_reason']}"
    )
    return (
        f"{s['height']:>6}  {_short(s['hash'])}  r{s['round']:<2} "
        f"{s['proposer_name']:<14.14} {_short(s['model_hash'])}  {shown:>7}  {what}"
    )


def run(args: argparse.Namespace) -> int:
    from node.block_json import block_summary, block_to_json
    from node.chain import Chain
    from node.genesis_files import genesis_summary

    genesis, store = open_chain(args.home)
    try:
        chain = Chain(store)
        tip = chain.height
        if args.height is not None:
            if args.height == 0:
                if genesis is None:
                    raise UserError(f"{args.home} has no readable genesis.cbor")
                print(json.dumps(genesis_summary(genesis), indent=None if args.json else 2))
                return 0
            committed = chain.committed(args.height) if 0 < args.height <= tip else None
            if committed is None:
                raise UserError(
                    f"height {args.height} is not committed here; this node's chain ends at "
                    f"height {tip}"
                )
            block, cert = committed
            detail = block_to_json(block, cert)
            detail["summary"] = block_summary(
                block, cert=cert, ledger=chain.ledger(args.height), genesis=genesis
            )
            print(json.dumps(detail, indent=None if args.json else 2))
            return 0
        first = 1 if args.last is None else max(1, tip - args.last + 1)
        summaries = [
            block_summary(block, cert=cert, ledger=chain.ledger(int(block.height)), genesis=genesis)
            for block, cert in chain.committed_range(first, tip)
        ]
    finally:
        store.close()
    if args.json:
        print(json.dumps(summaries))
        return 0
    chain_id = genesis.chain_id if genesis is not None else "?"
    print(f"chain {chain_id}: {tip} blocks")
    print(f"{'height':>6}  {'hash':<12}  {'rnd':<3} {'proposer':<14} {'model':<12}  {'metric':>7}")
    for summary in summaries:
        print(_line(summary))
    return 0
