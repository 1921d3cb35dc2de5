"""`bcfl devnet up`: start a local N-node devnet on built-in data (see devnet/launcher.py)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator

from node.config import TRANSPORTS

DEFAULT_DIR = "devnet-home"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=4, help="number of hospitals (default 4)")
    parser.add_argument(
        "--dataset",
        default="breast-cancer",
        help="breast-cancer, diabetes, digits, surveillance or a task package.module:task",
    )
    parser.add_argument(
        "--partition", default="iid", help="iid, dirichlet:ALPHA, quantity:X or label-skew:K"
    )
    parser.add_argument("--model", default=None, help="a model of the task (default: its own)")
    parser.add_argument("--rule", default="fedavg", help="fedavg, median, trimmed-mean, multi-krum")
    parser.add_argument(
        "--max-regression",
        type=float,
        default=None,
        help="genesis safeguards.max_regression: how far below the best certified model a "
        "candidate's metric may be (default 0.01; a large value leaves only the parent check)",
    )
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
            "forge-rejection, drift, rule-swap, double-propose or secagg-silent"
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
    parser.add_argument(
        "--link-delay",
        default="0ms",
        help="round-trip time added to every peer link by a TCP proxy, e.g. 40ms (WAN links)",
    )
    parser.add_argument(
        "--link-loss",
        default="0%",
        help="share of chunks each link loses and retransmits after a TCP timeout, e.g. 1%%",
    )
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="direct",
        help="how nodes send consensus messages: straight to each peer, or by relaying gossip",
    )
    parser.add_argument(
        "--join-at",
        type=int,
        default=None,
        metavar="H",
        help="start one more site (outside the genesis) at height H and add it by governance",
    )
    parser.add_argument(
        "--leave-at",
        type=int,
        default=None,
        metavar="H",
        help="at height H remove the last site by governance, then stop it",
    )
    parser.add_argument("--prometheus", action="store_true", help="also start a local Prometheus")
    from node.commands.genesis import add_dp_arguments

    dp = add_dp_arguments(parser)
    dp.add_argument(
        "--secure-aggregation",
        action="store_true",
        help="the genesis switches on secure aggregation: trainers publish masked updates",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the run's result as JSON on exit"
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from devnet.launcher import (
        DevnetError,
        DevnetSpec,
        create,
        parse_byzantine,
        start,
        wait_for_blocks,
    )
    from devnet.lifecycle import Lifecycle
    from devnet.monitoring import LiveTable, Steps, start_prometheus, write_scrape_config
    from devnet.processes import NodeProcess, stop_all
    from devnet.resources import ResourceMonitor
    from devnet.summary import collect
    from node.commands.genesis import privacy_policy
    from node.errors import UserError

    if args.nodes < 1 or args.nodes > 64:
        raise UserError(f"--nodes must be between 1 and 64, got {args.nodes}")
    if args.prometheus and args.no_metrics:
        raise UserError("--prometheus needs the metrics that --no-metrics turns off; drop one")
    if not 0 <= args.observers <= 16:
        raise UserError(f"--observers must be between 0 and 16, got {args.observers}")
    if args.max_regression is not None and not 0.0 <= args.max_regression < float("inf"):
        raise UserError(f"--max-regression must be a finite number >= 0, got {args.max_regression}")
    if args.blocks is not None and args.blocks < 1:
        raise UserError(f"--blocks must be at least 1, got {args.blocks}")
    if args.join_at is not None and args.leave_at is not None:
        raise UserError("give --join-at or --leave-at, not both")
    for flag, value in (("--join-at", args.join_at), ("--leave-at", args.leave_at)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be a height of at least 1, got {value}")
    if args.leave_at is not None and args.nodes < 2:
        raise UserError("--leave-at needs at least 2 nodes: one must stay")
    directory = Path(args.dir).expanduser().resolve()
    from devnet.linkproxy import parse_duration_ms, parse_percent

    try:
        link_delay_ms, link_loss = parse_duration_ms(args.link_delay), parse_percent(args.link_loss)
    except ValueError as exc:
        raise UserError(f"--link-delay / --link-loss: {exc}") from None
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
            link_delay_ms=link_delay_ms,
            link_loss=link_loss,
            transport=args.transport,
            privacy=privacy_policy(args),
            max_regression=args.max_regression,
            join_at=args.join_at,
            leave_at=args.leave_at,
        )
        steps = Steps(enabled=sys.stderr.isatty())
        nodes = steps.run(
            f"creating {spec.nodes} node homes and a genesis in {directory}", lambda: create(spec)
        )
    except DevnetError as exc:
        raise UserError(str(exc)) from None
    scrape = write_scrape_config(directory, nodes)
    processes: list[NodeProcess] = []
    monitor = ResourceMonitor()
    prometheus = None
    result: dict[str, object] | None = None
    status = 0
    table = LiveTable(enabled=sys.stderr.isatty(), blocks=args.blocks)
    lifecycle = (
        Lifecycle(spec, nodes, processes)
        if args.join_at is not None or args.leave_at is not None
        else None
    )

    def on_tick(rows: list[dict[str, object]]) -> None:
        table.update(rows)
        if lifecycle is not None:
            lifecycle.tick(rows)

    try:
        with _signals_stop_the_devnet():
            try:
                start(directory, nodes, processes)
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
                        on_tick,
                        lambda message: print(f"bcfl: warning: {message}", file=sys.stderr),
                        monitor,
                    )
            except KeyboardInterrupt:
                print("stopping the devnet", file=sys.stderr)
            except DevnetError as exc:
                print(f"bcfl: error: {exc}", file=sys.stderr)
                status = 1
            if args.json:
                try:
                    result = steps.run(
                        "evaluating every block on the held-out test split and the baseline",
                        lambda: collect(spec, nodes, args.blocks, monitor),
                    )
                    if lifecycle is not None:
                        result["lifecycle"] = lifecycle.report(result)
                except (Exception, KeyboardInterrupt) as exc:  # nodes may be gone: still stop
                    print(f"bcfl: could not collect the result: {exc!r}", file=sys.stderr)
                    status = status or 1
    finally:
        # Also after a launcher bug: no daemon may outlive `devnet up` (devnet/processes.py).
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


@contextlib.contextmanager
def _signals_stop_the_devnet() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) end `devnet up` as Ctrl-C does: nodes stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _consistent(result: dict[str, object]) -> bool:
    """True when no two nodes report different hashes at one height."""
    seen: dict[str, str] = {}
    for node in result["nodes"]:  # type: ignore[attr-defined]
        for height, digest in node["block_hashes"].items():
            if seen.setdefault(height, digest) != digest:
                return False
    return True
