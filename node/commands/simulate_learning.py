"""`bcfl simulate learning`: run the in-process federation simulator (learning/simulate.py).

Prints one table row per round (global test metrics, accepted or rejected, attestations) and the
baselines, or with `--json` one JSON object (keys `rounds`, `final`, `centralized`, `local_only`,
`rounds_to_centralized`, ...; with `--secure-aggregation` also `secure_aggregation`: the final
metric next to the same run with plain fedavg). Only parses arguments; the simulation lives in
`learning/`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from node.errors import UserError

RULES = ("fedavg", "median", "trimmed-mean", "multi-krum")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the simulator's options."""
    parser.add_argument("--nodes", type=int, default=8, help="number of sites (default 8)")
    parser.add_argument("--dataset", default="breast-cancer", choices=("breast-cancer", "diabetes"))
    parser.add_argument("--model", default="logreg", choices=("logreg", "mlp"))
    parser.add_argument(
        "--partition", default="iid", help="iid | dirichlet:ALPHA | quantity:ALPHA (default iid)"
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--rule", default="fedavg", choices=RULES)
    parser.add_argument("--attack", default=None, help="KIND:COUNT, e.g. signflip:2")
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="accept every candidate (ignore the >2/3 attestation gate)",
    )
    parser.add_argument("--dp-epsilon", type=float, default=None, help="per-site DP budget")
    parser.add_argument("--dp-delta", type=float, default=1e-5)
    parser.add_argument("--dp-clip", type=float, default=1.0, help="update L2 clip norm")
    parser.add_argument(
        "--dp-noise",
        type=float,
        default=None,
        help="noise multiplier (default: the one whose budget lasts --rounds rounds)",
    )
    parser.add_argument(
        "--secure-aggregation",
        action="store_true",
        help="aggregate masked updates (learning/secagg); also runs plain fedavg to compare",
    )
    parser.add_argument(
        "--secagg-neighbours",
        type=int,
        default=0,
        help="SecAgg+ neighbourhood size (default 0: all pairs)",
    )
    parser.add_argument(
        "--secagg-dropouts",
        type=int,
        default=0,
        help="trainers per round silent after masking (recovered from shares; default 0)",
    )
    parser.add_argument(
        "--dp-noise-shares",
        type=int,
        default=0,
        help="with --secure-aggregation and --dp-epsilon: each site adds 1/M of the noise "
        "variance and a round needs M updates (distributed DP; default 0: full noise each)",
    )
    parser.add_argument("--verdict-metric", default="loss")
    parser.add_argument("--verdict-tolerance", type=float, default=0.005)
    parser.add_argument("--fedprox-mu", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _config(args: argparse.Namespace) -> Any:
    from learning.attacks import parse_attack
    from learning.data import DataError, parse_partition
    from learning.simulate import SimConfig

    if args.nodes < 1 or args.rounds < 1 or args.local_epochs < 1 or args.threads < 1:
        raise UserError("--nodes, --rounds, --local-epochs and --threads must be at least 1")
    try:
        parse_partition(args.partition)
    except DataError as exc:
        raise UserError(str(exc)) from None
    attack, attackers = None, 0
    if args.attack:
        try:
            attack, attackers = parse_attack(args.attack)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if attackers > args.nodes:
            raise UserError(
                f"--attack names {attackers} attackers but there are {args.nodes} sites"
            )
    if args.dp_epsilon is not None and not args.dp_epsilon > 0:
        raise UserError("--dp-epsilon must be positive")
    if args.secure_aggregation and args.rule != "fedavg":
        raise UserError(
            f"--secure-aggregation sums the updates and cannot run --rule {args.rule}, "
            "which needs each update: use --rule fedavg"
        )
    if args.dp_noise_shares and not (args.secure_aggregation and args.dp_epsilon is not None):
        raise UserError(
            "--dp-noise-shares splits the noise between sites, which is private only when "
            "nobody sees one update: it needs --secure-aggregation and --dp-epsilon"
        )
    if not 0 <= args.dp_noise_shares <= args.nodes:
        raise UserError(f"--dp-noise-shares must be between 0 and --nodes ({args.nodes})")
    if args.secagg_neighbours < 0 or args.secagg_dropouts < 0:
        raise UserError("--secagg-neighbours and --secagg-dropouts must be 0 or more")
    return SimConfig(
        nodes=args.nodes,
        dataset=args.dataset,
        model=args.model,
        partition=args.partition,
        rounds=args.rounds,
        local_epochs=args.local_epochs,
        rule=args.rule,
        attack=attack,
        attackers=attackers,
        gate=not args.no_gate,
        dp_epsilon=args.dp_epsilon,
        dp_delta=args.dp_delta,
        dp_clip=args.dp_clip,
        dp_noise=args.dp_noise,
        verdict_metric=args.verdict_metric,
        verdict_tolerance=args.verdict_tolerance,
        fedprox_mu=args.fedprox_mu,
        seed=args.seed,
        threads=args.threads,
        secure_aggregation=args.secure_aggregation,
        secagg_neighbours=args.secagg_neighbours,
        secagg_dropouts=args.secagg_dropouts,
        dp_noise_shares=args.dp_noise_shares,
    )


def compare_with_plain(config: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Run the same federation with plain fedavg; the final metrics side by side."""
    from dataclasses import replace

    from learning.simulate import run_simulation

    plain = run_simulation(replace(config, secure_aggregation=False, dp_noise_shares=0))
    metric = result["metric"]
    return {
        "metric": metric,
        "final": result["final"][metric],
        "plain_final": plain["final"][metric],
        "difference": round(abs(result["final"][metric] - plain["final"][metric]), 6),
        "neighbours": config.secagg_neighbours,
        "dropouts_per_round": config.secagg_dropouts,
    }


def _fmt(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))


def run(args: argparse.Namespace) -> int:
    """Run the simulation and print the table or the JSON object."""
    from learning.data import DataError
    from learning.simulate import run_simulation

    config = _config(args)

    def show(entry: dict[str, Any]) -> None:
        verdict = "accepted" if entry.get("accepted") else "rejected"
        if not config.gate and not entry.get("accepted"):
            verdict = "applied*"
        if entry.get("reason") == "secagg-threshold":
            verdict = "carry"
        if entry.get("reason") == "no updates":
            verdict = "idle"
        extra = ""
        if entry.get("rejected_updates"):
            extra += f"  invalid={entry['rejected_updates']}"
        if "epsilon_spent" in entry:
            extra += f"  eps={entry['epsilon_spent']:.3f}"
        print(
            f"round {entry['round']:3d}  {_fmt(entry['test'])}  {verdict:8s}  "
            f"attest {entry['attestations']}/{config.nodes}  "
            f"updates {entry['contributors']}{extra}",
            flush=True,
        )

    try:
        result = run_simulation(config, on_round=None if args.json else show)
        if config.secure_aggregation:
            result["secure_aggregation"] = compare_with_plain(config, result)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    if not config.gate:
        print("* --no-gate: candidate applied although the attestations rejected it")
    print(f"final        {_fmt(result['final'])}")
    print(f"centralized  {_fmt(result['centralized'])}")
    print(f"local-only   {_fmt(result['local_only'])}")
    print(f"rounds to centralized {result['metric']}: {result['rounds_to_centralized']}")
    if "secure_aggregation" in result:
        sa = result["secure_aggregation"]
        print(
            f"secure aggregation: final {sa['metric']} {sa['final']:.4f}, plain fedavg "
            f"{sa['plain_final']:.4f}, difference {sa['difference']:.4f}"
        )
    if "dp" in result:
        dp = result["dp"]
        print(
            f"DP: epsilon spent {dp['epsilon_spent']:.3f} of {dp['epsilon_budget']} "
            f"(delta {dp['delta']}, noise multiplier {dp['noise_multiplier']:.3f}, "
            f"{dp['releases']} releases)"
        )
    return 0
