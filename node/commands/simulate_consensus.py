"""`bcfl simulate consensus`: many seeded runs of real cores on a virtual clock and faulty network.

Prints a summary table (or one JSON object with `--json`) and exits non-zero when any run broke
an invariant or failed to reach `--heights` in time; the JSON object is printed either way so
a CI job can keep it. The fast keyed-hash signer is the default because a few hundred seeds
with real BLS would take minutes; `--signer bls` runs the same code with real signatures.
"""

from __future__ import annotations

import argparse
import json
import sys

from consensus.sim.config import BEHAVIOURS
from node.errors import UserError


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1)")
    return value


def _delay(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        pair = (float(low), float(high)) if sep else (float(low), float(low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN:MAX in seconds") from None
    if not 0.0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return pair


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validators", type=int, default=4, help="number of validators (N)")
    parser.add_argument(
        "--byzantine", type=int, default=0, help="number of Byzantine validators (F)"
    )
    parser.add_argument(
        "--behaviour",
        "--behavior",
        choices=BEHAVIOURS,
        default="equivocate",
        help="what the Byzantine validators do",
    )
    parser.add_argument("--seeds", type=int, default=10, help="number of seeded runs")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed")
    parser.add_argument("--heights", type=int, default=5, help="heights each run must commit")
    parser.add_argument("--drop", type=_probability, default=0.0, help="message loss probability")
    parser.add_argument(
        "--delay",
        type=_delay,
        default=(0.005, 0.05),
        metavar="MIN:MAX",
        help="per-message delay range in virtual seconds (default 0.005:0.05)",
    )
    parser.add_argument(
        "--duplicate", type=_probability, default=0.0, help="message duplication probability"
    )
    parser.add_argument(
        "--reorder", action="store_true", help="let messages on one link overtake each other"
    )
    parser.add_argument(
        "--partition",
        action="store_true",
        help="split the validators in two for a while, then heal",
    )
    parser.add_argument(
        "--signer",
        choices=("fake", "bls"),
        default="fake",
        help="fake (keyed hash, fast) or bls (real BLS12-381 signatures)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from consensus.simulator import SimConfig, run_many

    if args.validators < 1:
        raise UserError("--validators must be at least 1.")
    if not 0 <= args.byzantine <= args.validators:
        raise UserError("--byzantine must be between 0 and --validators.")
    if args.seeds < 1 or args.heights < 1:
        raise UserError("--seeds and --heights must be at least 1.")
    if args.behaviour == "twins" and args.byzantine and args.validators < 2:
        raise UserError("twins need at least 2 validators.")
    if 3 * args.byzantine >= args.validators and args.byzantine > 0:
        print(
            f"bcfl: warning: {args.byzantine} of {args.validators} validators are Byzantine "
            "(at least 1/3 of the power): safety is NOT guaranteed, expect violations.",
            file=sys.stderr,
        )
    config = SimConfig(
        validators=args.validators,
        byzantine=args.byzantine,
        behaviour=args.behaviour,
        heights=args.heights,
        drop=args.drop,
        delay_min=args.delay[0],
        delay_max=args.delay[1],
        duplicate=args.duplicate,
        reorder=args.reorder,
        partition=args.partition,
        signer=args.signer,
    )
    summary = run_many(config, range(args.seed_start, args.seed_start + args.seeds))
    if args.json:
        print(json.dumps(summary.to_json(), sort_keys=True))
    else:
        print(summary.table())
    return 0 if summary.ok else 1
