"""The built-in data sets read from scikit-learn's files equal scikit-learn's own loaders."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

from learning import bundled
from learning.metrics import macro_f1, roc_auc


def test_breast_cancer_matches_sklearn() -> None:
    x, y = bundled.breast_cancer()
    bunch = load_breast_cancer()
    assert np.array_equal(x, bunch.data) and np.array_equal(y, bunch.target)
    assert list(bundled.BREAST_CANCER_FEATURES) == [str(n) for n in bunch.feature_names]


def test_diabetes_matches_sklearn() -> None:
    x, y = bundled.diabetes()
    bunch = load_diabetes()
    assert np.allclose(x, bunch.data, rtol=0, atol=1e-12) and np.array_equal(y, bunch.target)
    assert list(bundled.DIABETES_FEATURES) == list(bunch.feature_names)


def test_digits_matches_sklearn() -> None:
    x, y = bundled.digits()
    bunch = load_digits()
    assert np.array_equal(x, bunch.data) and np.array_equal(y, bunch.target)


def test_loading_does_not_import_sklearn() -> None:
    probe = (
        "import sys\nfrom learning import bundled\n"
        "bundled.breast_cancer(); bundled.diabetes(); bundled.digits()\n"
        "from learning.metrics import default_metrics\n"
        "print(any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_sklearn_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(bundled.BundledDataMissing, match="scikit-learn, which is not installed"):
        bundled.digits()


def test_auc_and_f1_equal_sklearn() -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(5)
    for trial in range(30):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        # coarse scores make ties common
        score = np.round(rng.normal(size=n) + y * rng.uniform(0, 2), 1 if trial % 2 else 4)
        assert roc_auc(y == 1, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
        labels = rng.integers(0, 5, n)
        pred = rng.integers(0, 6, n)
        expected = f1_score(labels, pred, average="macro", zero_division=0.0)
        assert macro_f1(labels, pred) == pytest.approx(expected, abs=1e-12)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.array([True, True]), np.array([0.1, 0.2]))
