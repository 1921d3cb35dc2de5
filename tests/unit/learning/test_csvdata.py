"""The CSV loader: valid files load; each defect is one line naming file, column and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learning.csvdata import load_csv
from learning.data import DataError
from learning.task import TaskSpec

TASK = TaskSpec(
    name="t",
    dataset="csv",
    kind="binary",
    model="logreg",
    features=("age", "bmi"),
    label="outcome",
    metric="auc",
    feature_center=(50.0, 25.0),
    feature_scale=(10.0, 5.0),
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_loads_normalised(tmp_path: Path) -> None:
    """Columns in any order load, normalised with the task's constants."""
    path = _write(tmp_path, "outcome,bmi,extra,age\n1,30,x,60\n0,20,y,40\n")
    split = load_csv(TASK, path)
    assert np.allclose(split.x, [[1.0, 1.0], [-1.0, -1.0]])
    assert split.y.tolist() == [1.0, 0.0]


def test_one_class_site_loads(tmp_path: Path) -> None:
    """A site whose rows all hold one class is a normal non-IID site, not an error."""
    split = load_csv(TASK, _write(tmp_path, "age,bmi,outcome\n60,30,1\n40,20,1\n"))
    assert split.y.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "site.csv: the file is empty"),
        ("age,bmi,outcome\n", "site.csv: the file has a header but no data rows"),
        ("age,outcome\n1,0\n", "site.csv: column 'bmi' is missing from the header row"),
        (
            "age,bmi,outcome\n1,2,0\nold,3,1\n",
            "site.csv: column 'age' row 3: 'old' is not a number",
        ),
        (
            "age,bmi,outcome\n1,nan,0\n2,3,1\n",
            "site.csv: column 'bmi' row 2: 'nan' is not a finite",
        ),
        ("age,bmi,outcome\n1,,0\n2,3,1\n", "site.csv: column 'bmi' row 2: the cell is empty"),
        (
            "age,bmi,outcome\n1,2,0\n2,3,2\n",
            "site.csv: column 'outcome' row 3: label 2 is not 0 or 1",
        ),
        ("age,bmi,outcome\n1,2,0\n2,3\n", "site.csv: row 3 has 2 cells but the header has 3"),
    ],
)
def test_defects_get_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    """Each defect is reported as one line naming the file, column and row."""
    with pytest.raises(DataError) as info:
        load_csv(TASK, _write(tmp_path, text))
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    """A path that does not exist is reported, not a traceback."""
    with pytest.raises(DataError, match="cannot read"):
        load_csv(TASK, tmp_path / "absent.csv")
