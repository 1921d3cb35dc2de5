"""`bcfl genesis NODE_INFO.json... --out DIR|FILE [--install HOME...]`: create a chain's genesis.

Reads every site's `node_info.json` (written by `bcfl init`), checks each BLS proof of
possession, and writes the genesis plus the initial model: `--out DIR` writes
`DIR/genesis.cbor` and `DIR/genesis.model.safetensors` (each site copies both into its home),
`--out FILE.cbor` writes FILE and `FILE-stem.model.safetensors` next to it, and `--install HOME`
writes straight into node homes. Prints the genesis hash, which every site should compare
out of band before starting its node.

Defaults (where the issue is silent): aggregation "trimmed-mean" (robust to a minority of
poisoned updates; the learning engine's acceptance runs used it), verdict "loss" with tolerance
0.005, initial model seed 0, the chain id `bcfl-<dataset>`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.errors import UserError

RULES = ("fedavg", "median", "trimmed-mean", "multi-krum")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node_infos", nargs="+", type=Path, metavar="NODE_INFO.json")
    parser.add_argument("--out", type=Path, help="directory or .cbor file to write the genesis to")
    parser.add_argument(
        "--install",
        type=Path,
        nargs="+",
        default=[],
        metavar="HOME",
        help="node homes to install into",
    )
    parser.add_argument("--chain-id", default=None, help="chain id (default bcfl-<dataset>)")
    parser.add_argument(
        "--dataset",
        default="breast-cancer",
        help="breast-cancer, diabetes, digits, surveillance, csv or a task package.module:task",
    )
    parser.add_argument(
        "--task-json",
        type=Path,
        help="task spec map (JSON) for --dataset csv: features, label, ...",
    )
    parser.add_argument("--model", default=None, help="a model of the task (default: its own)")
    parser.add_argument(
        "--feature-stats",
        type=Path,
        nargs="+",
        default=[],
        metavar="SUMMARY.json",
        help="every site's `bcfl data summary`: the normalisation is their exact pooled mean/std",
    )
    parser.add_argument("--hidden", default="32", help="MLP hidden sizes, comma separated")
    parser.add_argument("--rule", choices=RULES, default="trimmed-mean", help="aggregation rule")
    parser.add_argument("--trim-fraction", type=float, default=0.25)
    parser.add_argument("--krum-f", type=int, default=None)
    parser.add_argument("--verdict-metric", default="loss", help="metric deciding 'improved'")
    parser.add_argument(
        "--noise-margin",
        "--tolerance",
        dest="noise_margin",
        type=float,
        default=0.005,
        help="how much worse than its parent a candidate may measure and still count as improved",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial model")
    parser.add_argument("--update-window", type=float, default=None, help="seconds")
    parser.add_argument("--attestation-timeout", type=float, default=None, help="seconds")
    parser.add_argument("--propose-timeout", type=float, default=None, help="seconds")
    parser.add_argument("--expected-trainers", type=int, default=None)
    parser.add_argument(
        "--evidence-consequence",
        choices=("slash", "remove"),
        default="remove",
        help="what committed double-sign evidence costs its author: reputation only (slash) or "
        "also its membership, power and training weight, two heights later (remove, default)",
    )
    parser.add_argument(
        "--power",
        action="append",
        default=[],
        metavar="NAME=P",
        help="voting power of member NAME (repeatable; default 1 for every validator)",
    )
    dp = add_dp_arguments(parser)
    dp.add_argument(
        "--secure-aggregation",
        action="store_true",
        help="trainers mask their updates; only the sum is readable (needs --rule fedavg)",
    )
    parser.add_argument("--json", action="store_true", help="print the genesis summary as JSON")


def add_dp_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The --dp-* flags of the genesis privacy policy (also `bcfl devnet up`'s)."""
    dp = parser.add_argument_group("privacy policy (docs/THREAT-MODEL.md: every site applies it)")
    dp.add_argument(
        "--dp-clip", type=float, default=None, help="per-update L2 clip norm; turns DP on"
    )
    dp.add_argument("--dp-noise", type=float, default=None, help="Gaussian noise multiplier")
    dp.add_argument("--dp-delta", type=float, default=1e-5, help="delta of the DP accounting")
    dp.add_argument(
        "--dp-epsilon", type=float, default=None, help="per-site epsilon budget (turns DP on)"
    )
    dp.add_argument(
        "--dp-rounds",
        type=int,
        default=20,
        help="releases the budget should last when --dp-noise is not given (default 20)",
    )
    dp.add_argument(
        "--dp-noise-shares",
        type=int,
        default=0,
        metavar="M",
        help="distributed DP under secure aggregation: each site adds 1/M of the noise "
        "variance, and a model block needs M updates (M = trainers - assumed colluders)",
    )
    return dp


DEFAULT_DP_CLIP = 1.0
"""Clip norm when --dp-epsilon or --dp-noise is given without --dp-clip."""


def privacy_policy(args: argparse.Namespace):  # noqa: ANN201 - consensus.types.Privacy
    """The genesis privacy policy of the command line; calibrates the noise to a budget."""
    from consensus.types import Privacy

    secure = bool(getattr(args, "secure_aggregation", False))
    dp_on = args.dp_clip is not None or args.dp_noise is not None or args.dp_epsilon is not None
    shares = int(getattr(args, "dp_noise_shares", 0) or 0)
    if shares and not (dp_on and secure):
        raise UserError(
            "--dp-noise-shares splits the DP noise between sites, which is private only when "
            "nobody sees one update: it needs --secure-aggregation and --dp-epsilon or --dp-noise"
        )
    if shares < 0:
        raise UserError(f"--dp-noise-shares must be 0 or more, got {shares}")
    if not dp_on:
        return Privacy(delta=args.dp_delta, secure_aggregation=secure)
    clip = DEFAULT_DP_CLIP if args.dp_clip is None else args.dp_clip
    if not clip > 0:
        raise UserError(f"--dp-clip must be positive, got {args.dp_clip}")
    if not 0 < args.dp_delta < 1:
        raise UserError(f"--dp-delta must be in (0, 1), got {args.dp_delta}")
    if args.dp_epsilon is not None and not args.dp_epsilon > 0:
        raise UserError(f"--dp-epsilon must be positive, got {args.dp_epsilon}")
    noise = args.dp_noise
    if noise is None:
        if args.dp_epsilon is None:
            raise UserError("--dp-clip needs --dp-noise or --dp-epsilon (to calibrate the noise)")
        if args.dp_rounds < 1:
            raise UserError(f"--dp-rounds must be at least 1, got {args.dp_rounds}")
        from learning import noise_for_rounds

        noise = noise_for_rounds(args.dp_epsilon, args.dp_delta, args.dp_rounds)
    if not noise > 0:
        raise UserError(f"--dp-noise must be positive, got {noise}")
    return Privacy(
        clip_norm=float(clip),
        noise_multiplier=float(noise),
        delta=float(args.dp_delta),
        epsilon_budget=float(args.dp_epsilon or 0.0),
        secure_aggregation=secure,
        dp_noise_shares=shares,
    )


def parse_powers(items: list[str]) -> dict[str, int]:
    """`--power NAME=P` items as a map; one sentence for a malformed or repeated item."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--power {item!r} must be NAME=P, e.g. --power hospital-a=3")
        try:
            power = int(value.strip())
        except ValueError:
            raise UserError(f"--power {item!r}: the power {value!r} is not an integer") from None
        if name in out:
            raise UserError(f"--power names {name!r} twice")
        out[name] = power
    return out


def _task(args: argparse.Namespace):  # noqa: ANN202 - learning.TaskSpec, imported lazily
    from learning import DataError, TaskError, TaskSpec, builtin_task

    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise UserError(f"--hidden must be comma-separated integers, got {args.hidden!r}") from None
    if args.dataset != "csv":
        if args.task_json is not None:
            raise UserError("--task-json is only for --dataset csv")
        try:
            return builtin_task(args.dataset, model=args.model, hidden=hidden or (32,))
        except DataError as exc:
            raise UserError(str(exc)) from None
    if args.task_json is None:
        raise UserError(
            "--dataset csv needs --task-json FILE naming the features, label, kind and metric"
        )
    try:
        raw = json.loads(args.task_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {args.task_json} as JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{args.task_json} must hold a JSON object (a task spec)")
    raw = {
        "dataset": "csv",
        "model": args.model or "logreg",
        "hidden": list(hidden or (32,)),
        **raw,
    }
    try:
        return TaskSpec.from_dict(raw)
    except (TaskError, ValueError) as exc:
        raise UserError(f"{args.task_json}: {exc}") from None


def _declared(task, paths: list[Path]):  # type: ignore[no-untyped-def]  # learning.TaskSpec
    """`task` with the normalisation pooled from the sites' summaries (unchanged without any)."""
    from learning import TaskError
    from learning.normalisation import FeatureSummary, declare

    if not paths:
        return task
    summaries = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path} as a JSON site summary: {exc}") from None
        try:
            summaries.append(FeatureSummary.from_dict(data, str(path)))
        except TaskError as exc:
            raise UserError(str(exc)) from None
    try:
        return declare(task, summaries)
    except TaskError as exc:
        raise UserError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from consensus.codec import genesis_hash
    from consensus.types import Timeouts
    from learning import AggregationRule, VerdictRule
    from node.genesis_files import build_genesis, genesis_summary, write_genesis, write_genesis_file
    from node.nodeinfo import read_node_info

    if args.out is None and not args.install:
        raise UserError("give --out DIR|FILE or --install HOME (or both)")
    infos = [read_node_info(path) for path in args.node_infos]
    powers = parse_powers(args.power)
    task = _declared(_task(args), args.feature_stats)
    try:
        rule = AggregationRule(name=args.rule, trim_fraction=args.trim_fraction, krum_f=args.krum_f)
        verdict = VerdictRule(metric=args.verdict_metric, noise_margin=args.noise_margin)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    defaults = Timeouts()
    timeouts = Timeouts(
        propose=args.propose_timeout or defaults.propose,
        update_window=args.update_window or defaults.update_window,
        attestation=args.attestation_timeout or defaults.attestation,
    )
    genesis, model = build_genesis(
        infos,
        chain_id=args.chain_id or f"bcfl-{args.dataset}",
        task=task,
        init_seed=args.seed,
        rule=rule,
        verdict=verdict,
        timeouts=timeouts,
        expected_trainers=args.expected_trainers,
        privacy=privacy_policy(args),
        powers=powers,
        evidence_consequence=args.evidence_consequence,
    )
    written: list[str] = []
    if args.out is not None:
        out: Path = args.out
        target = out if out.suffix == ".cbor" else out / "genesis.cbor"
        written.extend(str(p) for p in write_genesis_file(target, genesis, model))
    for home in args.install:
        if not (home / "config.toml").is_file():
            raise UserError(f"{home} is not a node home; create it with `bcfl init --home {home}`")
        write_genesis(home, genesis, model)
        written.append(str(home / "genesis.cbor"))
    summary = genesis_summary(genesis)
    summary["written"] = written
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"genesis hash {genesis_hash(genesis).hex()}")
    print(
        f"  chain {genesis.chain_id}: {len(genesis.validators)} members, task {task.name} "
        f"({task.model}), rule {genesis.aggregation_rule}, verdict {verdict.metric}"
        f" +/- {verdict.noise_margin}"
    )
    for path in written:
        print(f"  wrote {path}")
    return 0
