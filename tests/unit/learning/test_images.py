"""The image-folder loader: valid folders load; each defect is one line naming file and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from learning.data import DataError
from learning.images import load_image_folder
from learning.plugin import builtin_task

DIGITS = builtin_task("digits")


def _folder(tmp_path: Path, labels: str, images: dict[str, int] | None = None) -> Path:
    for name, value in (images if images is not None else {"a.png": 255, "b.jpg": 0}).items():
        Image.new("L", (16, 16), color=value).save(tmp_path / name)
    (tmp_path / "labels.csv").write_text(labels, encoding="utf-8")
    return tmp_path


def test_valid_folder_loads_resized_and_normalised(tmp_path: Path) -> None:
    """PNG and JPEG load, resized to 8x8, scaled to the digits' 0..16 range, normalised."""
    split = load_image_folder(DIGITS, _folder(tmp_path, "file,label\na.png,3\nb.jpg,7\n"), 16.0)
    assert split.x.shape == (2, 64)
    center, scale = DIGITS.feature_center[0], DIGITS.feature_scale[0]
    assert np.allclose(split.x[0], (16.0 - center) / scale, atol=1e-4)
    assert np.allclose(split.x[1], (0.0 - center) / scale, atol=0.05)
    assert split.y.tolist() == [3.0, 7.0]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("name,label\na.png,1\n", "labels.csv: column 'file' is missing from the header row"),
        ("file,label\n", "labels.csv: the file has a header but no data rows"),
        ("file,label\na.png,1\nc.png,2\n", "labels.csv: row 3: image 'c.png' does not exist"),
        ("file,label\na.png,10\n", "labels.csv: column 'label' row 2: '10' is not a class"),
        ("file,label\na.png,cat\n", "labels.csv: column 'label' row 2: 'cat' is not a class"),
        ("file,label\n../a.png,1\n", "labels.csv: row 2: image '../a.png' must be a path inside"),
        ("file,label\nnotes.png,1\n", "labels.csv: row 2: image 'notes.png' is not a readable"),
        ("file,label\na.png\n", "labels.csv: row 2 has 1 cells but the header has 2"),
    ],
)
def test_defects_get_one_line_errors(tmp_path: Path, labels: str, expected: str) -> None:
    """Each defect is one sentence naming the file and the row."""
    _folder(tmp_path, labels)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError) as info:
        load_image_folder(DIGITS, tmp_path, 16.0)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_folder_without_labels_is_a_data_error(tmp_path: Path) -> None:
    """A folder without labels.csv says what it needs."""
    with pytest.raises(DataError, match="has no labels.csv"):
        load_image_folder(DIGITS, tmp_path, 16.0)
