"""A strict loader for a site's own CSV file, checked against the task's declared schema.

The file needs a header row naming at least the task's features and its label (extra columns are
ignored, order does not matter). Every cell of those columns must be a finite number; a binary
label must be 0 or 1. A site may hold a single class (a cancer centre sees mostly malignant
cases): it trains and attests like any other, its verdict falling back to the loss where a
metric such as AUC is undefined on its validation split. Each problem is reported as one line naming the
file, the column and the row, where "row" is the line number in the file as a spreadsheet shows it
(the header is row 1), so an operator can jump straight to the cell.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from learning.data import DataError, Split, normalise
from learning.task import TaskSpec

MAX_CSV_BYTES = 1024 * 1024 * 1024


def load_csv(task: TaskSpec, path: str | Path) -> Split:
    """Read and validate a site's CSV; raise DataError with a one-line reason."""
    x, y = read_csv(task, path)
    return Split(normalise(task, x), y.astype(np.float32))


def read_csv(
    task: TaskSpec, path: str | Path
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The validated raw feature values (float64, not normalised) and labels of a site's CSV."""
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from exc
    if size > MAX_CSV_BYTES:
        raise DataError(f"{name}: file is larger than {MAX_CSV_BYTES} bytes")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: the file is not UTF-8 text") from exc
    except csv.Error as exc:
        raise DataError(f"{name}: not a valid CSV file ({exc})") from exc
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{name}: the file is empty (it needs a header row and data rows)")
    header = [cell.strip() for cell in rows[0]]
    columns = [*task.features, task.label]
    positions: dict[str, int] = {}
    for column in columns:
        if column not in header:
            raise DataError(f"{name}: column {column!r} is missing from the header row")
        positions[column] = header.index(column)
    body = [
        (line, row) for line, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)
    ]
    if not body:
        raise DataError(f"{name}: the file has a header but no data rows")
    values = np.empty((len(body), len(columns)), dtype=np.float64)
    for r, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise DataError(
                f"{name}: row {line} has {len(row)} cells but the header has {len(header)}"
            )
        for c, column in enumerate(columns):
            cell = row[positions[column]].strip()
            values[r, c] = _number(cell, name, column, line)
    y = values[:, -1]
    if task.kind == "binary":
        for r, (line, _row) in enumerate(body):
            if y[r] not in (0.0, 1.0):
                raise DataError(
                    f"{name}: column {task.label!r} row {line}: label {y[r]:g} is not 0 or 1"
                )
    return values[:, :-1], y


def _number(cell: str, name: str, column: str, line: int) -> float:
    if cell == "":
        raise DataError(f"{name}: column {column!r} row {line}: the cell is empty")
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{name}: column {column!r} row {line}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{name}: column {column!r} row {line}: {cell!r} is not a finite number")
    return value
