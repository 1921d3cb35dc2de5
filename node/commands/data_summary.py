"""`bcfl data summary --task-json TASK.json --csv FILE [--out FILE]`: a site's feature summary.

What a site contributes to the consortium's normalisation before the genesis: for its own rows,
the count and, per feature, the mean and the sum of squared deviations (learning/normalisation.py).
No row leaves the site; the coordinator of the genesis passes every site's file to
`bcfl genesis --feature-stats A.json B.json ...`, which combines them exactly into the task's
declared feature centre and scale.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-json", type=Path, required=True, help="the consortium's task map")
    parser.add_argument("--csv", type=Path, required=True, help="this site's CSV file")
    parser.add_argument("--out", type=Path, help="write the summary here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    from learning import DataError, TaskError, TaskSpec
    from learning.csvdata import read_csv
    from learning.normalisation import summarise

    try:
        raw = json.loads(args.task_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {args.task_json} as JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{args.task_json} must hold a JSON object (a task spec)")
    try:
        spec = TaskSpec.from_dict({"dataset": "csv", "model": "logreg", **raw})
    except (TaskError, ValueError) as exc:
        raise UserError(f"{args.task_json}: {exc}") from None
    try:
        x, _ = read_csv(spec, args.csv)  # the raw feature values, as written
    except DataError as exc:
        raise UserError(str(exc)) from None
    text = json.dumps(summarise(x).to_dict())
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text + "\n", encoding="utf-8")
        print(f"wrote the summary of {len(x)} rows of {args.csv} to {args.out}")
    return 0
