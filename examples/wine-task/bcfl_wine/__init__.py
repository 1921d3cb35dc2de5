"""An example bcfl task plugin: which of three cultivars a wine comes from, from 13 measurements.

Everything a consortium must agree on is here, in one module whose source file the genesis pins
by hash: the schema, the declared normalisation, the model, the metric that decides the verdict
and the training defaults. The data ships with scikit-learn (178 wines, 13 features, 3 classes);
a real task would load each site's own files in `load_site` instead (the default reads a CSV with
the spec's feature and label columns).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from learning.data import ArrayData
from learning.plugin import BuiltinData, Task
from learning.task import TaskSpec
from learning.trainer import TrainConfig


def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.float64)


class WineTask(Task):
    """Three classes, an MLP with one hidden layer, accuracy decides."""

    name = "wine"
    version = "1.0.0"
    models = ("mlp",)

    def spec(self, model: str | None = None, hidden: tuple[int, ...] | None = None) -> TaskSpec:
        from sklearn.datasets import load_wine

        x, _ = _raw()
        return TaskSpec(
            name="wine",
            dataset="wine",
            kind="multiclass",
            model=model or "mlp",
            features=tuple(str(n) for n in load_wine().feature_names),
            label="cultivar",
            metric="accuracy",
            hidden=hidden or (16,),
            feature_center=tuple(float(v) for v in x.mean(axis=0)),
            feature_scale=tuple(float(v) for v in x.std(axis=0)),
            n_classes=3,
        )

    def build_model(self, spec: TaskSpec) -> nn.Module:
        return nn.Sequential(
            nn.Linear(spec.n_features, spec.hidden[0]),
            nn.ReLU(),
            nn.Linear(spec.hidden[0], spec.n_classes),
        )

    def builtin(self) -> BuiltinData | None:
        return ArrayData(_raw)

    def train_config(self, spec: TaskSpec) -> TrainConfig | None:
        return TrainConfig(epochs=3, batch_size=8, lr=0.01, optimizer="adam")


task = WineTask()
