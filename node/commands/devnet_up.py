"""`bcfl devnet up`: start a local N-node devnet on built-in data (see devnet/launcher.py)."""

from __future__ import annotations

import argparse
import sys

DEFAULT_DIR = "devnet-home"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=4, help="number of hospitals (default 4)")
    parser.add_argument("--dataset", default="breast-cancer", help="breast-cancer or diabetes")
    parser.add_argument("--partition", default="iid", help="iid, dirichlet:ALPHA or quantity:X")
    parser.add_argument("--model", default="logreg", help="logreg or mlp")
    parser.add_argument("--rule", default="fedavg", help="fedavg, median, trimmed-mean, multi-krum")
    parser.add_argument("--seed", type=int, default=0, help="data partition and model seed")
    parser.add_argument("--blocks", type=int, default=None, help="stop after B committed blocks")
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"devnet directory (default {DEFAULT_DIR})"
    )
    parser.add_argument(
        "--observers", type=int, default=0, help="also run K observer nodes (follow, verify)"
    )
    parser.add_argument(
        "--byzantine",
        default=None,
        help=(
            "KIND:COUNT, KIND poison, garbage, equivocate, timestamp, inflate, "
            "forge-rejection, drift, rule-swap or double-propose"
        ),
    )
    parser.add_argument(
        "--update-window",
        type=float,
        default=10.0,
        help="seconds the proposer waits for missing trainers' updates (default 10)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="with --blocks: give up after this many s"
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="run the nodes with metrics off (to measure what they cost)",
    )
    parser.add_argument("--prometheus", action="store_true", help="also start a local Prometheus")
    parser.add_argument(
        "--json", action="store_true", help="print the run's result as JSON on exit"
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from devnet.launcher import (
        DevnetError,
        DevnetSpec,
        collect,
        create,
        parse_byzantine,
        start,
        wait_for_blocks,
    )
    from devnet.monitoring import LiveTable, Steps, start_prometheus, write_scrape_config
    from devnet.processes import stop_all
    from node.errors import UserError

    if args.nodes < 1 or args.nodes > 64:
        raise UserError(f"--nodes must be between 1 and 64, got {args.nodes}")
    if args.prometheus and args.no_metrics:
        raise UserError("--prometheus needs the metrics that --no-metrics turns off; drop one")
    if not 0 <= args.observers <= 16:
        raise UserError(f"--observers must be between 0 and 16, got {args.observers}")
    if args.blocks is not None and args.blocks < 1:
        raise UserError(f"--blocks must be at least 1, got {args.blocks}")
    directory = Path(args.dir).expanduser().resolve()
    try:
        spec = DevnetSpec(
            directory=directory,
            nodes=args.nodes,
            dataset=args.dataset,
            partition=args.partition,
            model=args.model,
            rule=args.rule,
            seed=args.seed,
            blocks=args.blocks,
            byzantine=parse_byzantine(args.byzantine, args.nodes),
            observers=args.observers,
            timeout_s=args.timeout,
            update_window_s=args.update_window,
            metrics=not args.no_metrics,
        )
        steps = Steps(enabled=sys.stderr.isatty())
        nodes = steps.run(
            f"creating {spec.nodes} node homes and a genesis in {directory}", lambda: create(spec)
        )
    except DevnetError as exc:
        raise UserError(str(exc)) from None
    scrape = write_scrape_config(directory, nodes)
    processes = start(directory, nodes)
    prometheus = None
    result: dict[str, object] | None = None
    status = 0
    table = LiveTable(enabled=sys.stderr.isatty(), blocks=args.blocks)
    try:
        if args.prometheus:
            prometheus, url = start_prometheus(directory, scrape)
            print(f"Prometheus: {url}", file=sys.stderr)
        print(f"started {len(processes)} nodes; Ctrl-C stops them", file=sys.stderr)
        with table:
            wait_for_blocks(
                nodes,
                processes,
                args.blocks,
                spec.timeout_s,
                table.update,
                lambda message: print(f"bcfl: warning: {message}", file=sys.stderr),
            )
    except KeyboardInterrupt:
        print("stopping the devnet", file=sys.stderr)
    except DevnetError as exc:
        print(f"bcfl: error: {exc}", file=sys.stderr)
        status = 1
    finally:
        if args.json:
            try:
                result = steps.run(
                    "evaluating every block on the held-out test split and the baseline",
                    lambda: collect(spec, nodes, args.blocks),
                )
            except Exception as exc:  # the nodes may be gone: report, still stop them
                print(f"bcfl: could not collect the result: {exc}", file=sys.stderr)
                status = status or 1
        stop_all(directory, processes)
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=10)
    if result is not None:
        print(json.dumps(result, indent=2, sort_keys=True))
        if not _consistent(result):
            print("bcfl: error: nodes disagree on a block hash", file=sys.stderr)
            status = 1
    return status


def _consistent(result: dict[str, object]) -> bool:
    """True when no two nodes report different hashes at one height."""
    seen: dict[str, str] = {}
    for node in result["nodes"]:  # type: ignore[attr-defined]
        for height, digest in node["block_hashes"].items():
            if seen.setdefault(height, digest) != digest:
                return False
    return True
