"""Built-in tabular tasks: breast cancer, diabetes, and a site's own CSV.

The data sets ship inside scikit-learn (no download): the Wisconsin diagnostic breast cancer data
(569 patients, 30 features, binary: malignant = 1, metric AUC) and the diabetes progression data
(442 patients, 10 features, regression, metric R²). Their normalisation constants are declared,
computed once from the public data set. Models: `logreg` (one linear layer) and `mlp`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
from torch import nn

from learning import bundled
from learning.data import ArrayData
from learning.models import TabularModel
from learning.plugin import BuiltinData, Task
from learning.task import TaskSpec

RawData = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[str]]


def _raw(name: str) -> RawData:
    if name == "breast-cancer":
        x, target = bundled.breast_cancer()
        # sklearn codes malignant as 0; the clinical positive class (malignant) is 1 here.
        y = 1.0 - target
        features = bundled.BREAST_CANCER_FEATURES
    else:
        x, y = bundled.diabetes()
        features = bundled.DIABETES_FEATURES
    return x, y, [n.replace(" ", "_") for n in features]


class TabularTask(Task):
    """Rows of numeric features; a linear model or an MLP with one output."""

    version = "1"
    models = ("logreg", "mlp")

    def __init__(self, dataset: str) -> None:
        self.name = dataset
        self.dataset = dataset

    def build_model(self, spec: TaskSpec) -> nn.Module:
        return TabularModel(spec.n_features, spec.hidden if spec.model == "mlp" else ())

    def spec(self, model: str | None = None, hidden: tuple[int, ...] | None = None) -> TaskSpec:
        x, y, names = _raw(self.dataset)
        center = tuple(float(v) for v in x.mean(axis=0))
        scale = tuple(float(v) if v > 0 else 1.0 for v in x.std(axis=0))
        spec = TaskSpec(
            name=self.dataset,
            dataset=self.dataset,
            kind="binary",
            model=model or "logreg",
            features=tuple(names),
            label="malignant",
            metric="auc",
            hidden=hidden or (32,),
            feature_center=center,
            feature_scale=scale,
        )
        if self.dataset == "breast-cancer":
            return spec
        return replace(
            spec,
            kind="regression",
            label="progression",
            metric="r2",
            label_center=float(y.mean()),
            label_scale=float(y.std()),
        )

    def builtin(self) -> BuiltinData | None:
        if self.dataset == "csv":
            return None
        return ArrayData(lambda: _raw(self.dataset)[:2])


breast_cancer = TabularTask("breast-cancer")
diabetes = TabularTask("diabetes")
csv = TabularTask("csv")
"""The task of a consortium's own CSV: its spec comes from the genesis (`--task-json`)."""
