"""A strict loader for a site's own image folder: PNG/JPEG files and a labels CSV.

The folder holds `labels.csv` with a header naming the columns `file` and `label` (extra columns
are ignored), one row per image. `file` is a path relative to the folder (no absolute paths, no
`..`); `label` a class number 0..n_classes-1. Every image is decoded with Pillow (PNG and JPEG
only), converted to the task's channels (1: grayscale, 3: RGB), resized to the task's input size
and its 8-bit pixels mapped linearly onto 0..`pixel_max` (the raw range the task's declared
normalisation expects) before that normalisation. Each problem is one sentence naming the file
and the row, as in the CSV loader (the header is row 1).
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path, PurePosixPath

import numpy as np

from learning.data import DataError, Split, normalise
from learning.task import TaskSpec

LABELS_FILE = "labels.csv"
FORMATS = ("PNG", "JPEG")
MAX_IMAGE_PIXELS = 4096 * 4096
"""Larger images are refused before decoding (a decompression bomb must not exhaust memory)."""


def load_image_folder(task: TaskSpec, folder: str | Path, pixel_max: float = 255.0) -> Split:
    """Read and validate a site's image folder; raise DataError with a one-line reason."""
    folder = Path(folder)
    labels_path = folder / LABELS_FILE
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (an image task needs a folder with {LABELS_FILE})")
    try:
        with labels_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"{folder}: the folder has no {LABELS_FILE} (columns file,label)") from None
    except UnicodeDecodeError:
        raise DataError(f"{LABELS_FILE}: the file is not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{LABELS_FILE}: not a valid CSV file ({exc})") from None
    header = [c.strip() for c in rows[0]] if rows else []
    for column in ("file", "label"):
        if column not in header:
            raise DataError(f"{LABELS_FILE}: column {column!r} is missing from the header row")
    at_file, at_label = header.index("file"), header.index("label")
    body = [(n, r) for n, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]
    if not body:
        raise DataError(f"{LABELS_FILE}: the file has a header but no data rows")
    images = []
    labels = []
    for line, row in body:
        if len(row) != len(header):
            raise DataError(
                f"{LABELS_FILE}: row {line} has {len(row)} cells but the header has {len(header)}"
            )
        labels.append(_label(row[at_label].strip(), task, line))
        images.append(_image(folder, row[at_file].strip(), task, line, pixel_max))
    x = np.stack(images).reshape(len(images), -1)
    return Split(normalise(task, x), np.asarray(labels, dtype=np.float32))


def _label(cell: str, task: TaskSpec, line: int) -> int:
    if not cell.isdigit() or int(cell) >= task.n_classes:
        raise DataError(
            f"{LABELS_FILE}: column 'label' row {line}: {cell!r} is not a class number "
            f"0..{task.n_classes - 1}"
        )
    return int(cell)


def _image(folder: Path, name: str, task: TaskSpec, line: int, pixel_max: float) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    where = f"{LABELS_FILE}: row {line}: image {name!r}"
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        raise DataError(f"{where} must be a path inside the folder")
    path = folder / relative
    channels, height, width = task.input_shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{where} is larger than {MAX_IMAGE_PIXELS} pixels")
                converted = image.convert("L" if channels == 1 else "RGB")
                resized = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(resized, dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{where} does not exist") from None
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise DataError(f"{where} is not a readable PNG or JPEG file") from None
    except OSError as exc:
        raise DataError(f"{where} cannot be read ({exc})") from None
    if channels == 3:
        pixels = pixels.transpose(2, 0, 1)
    return pixels * (pixel_max / 255.0)
