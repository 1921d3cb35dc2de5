"""The public data sets that ship inside scikit-learn, read without importing scikit-learn.

scikit-learn stores its small data sets as CSV files inside the installed package
(`sklearn/datasets/data/`). Importing `sklearn.datasets` to read them costs a daemon about 100 MB
of resident memory and a second of start-up (scipy, joblib, threadpoolctl...), for three files
that numpy reads directly. This module finds the installed package without executing it and
returns the same arrays as `load_breast_cancer`, `load_diabetes` and `load_digits` (checked
against them in tests/unit/learning/test_bundled.py).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import numpy.typing as npt

Arrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]

_CANCER_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
)
BREAST_CANCER_FEATURES = tuple(
    [f"mean {m}" for m in _CANCER_MEASURES]
    + [f"{m} error" for m in _CANCER_MEASURES]
    + [f"worst {m}" for m in _CANCER_MEASURES]
)
DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


class BundledDataMissing(Exception):
    """scikit-learn (which ships the built-in data sets) is not installed or is incomplete."""


def data_dir() -> Path:
    """The folder of scikit-learn's shipped data files (found without importing scikit-learn)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise BundledDataMissing(
            "the built-in data sets ship with scikit-learn, which is not installed"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if not folder.is_dir():
        raise BundledDataMissing(f"scikit-learn's data folder {folder} is missing")
    return folder


def _file(name: str) -> Path:
    path = data_dir() / name
    if not path.is_file():
        raise BundledDataMissing(f"scikit-learn's data file {path} is missing")
    return path


def breast_cancer() -> Arrays:
    """569 x 30 features and sklearn's target (0 = malignant, 1 = benign)."""
    with _file("breast_cancer.csv").open(encoding="utf-8") as handle:
        n_samples, n_features = (int(v) for v in handle.readline().split(",")[:2])
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    if table.shape != (n_samples, n_features + 1):
        raise BundledDataMissing("scikit-learn's breast_cancer.csv does not match its header")
    return table[:, :n_features], table[:, n_features]


def diabetes() -> Arrays:
    """442 x 10 features, centred and scaled as `load_diabetes()` does (unit L2 norm per column)."""
    with gzip.open(_file("diabetes_data_raw.csv.gz"), mode="rt", encoding="utf-8") as handle:
        data = np.loadtxt(handle, dtype=np.float64)
    with gzip.open(_file("diabetes_target.csv.gz"), mode="rt", encoding="utf-8") as handle:
        target = np.loadtxt(handle, dtype=np.float64)
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    data /= data.shape[0] ** 0.5
    return data, target


def digits() -> Arrays:
    """1797 8x8 images flattened to 64 pixel values in 0..16, and the digit 0..9."""
    with gzip.open(_file("digits.csv.gz"), mode="rt", encoding="utf-8") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return table[:, :-1], table[:, -1]
