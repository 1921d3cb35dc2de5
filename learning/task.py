"""The task spec: what the consortium learns, named by the genesis.

A `TaskSpec` fixes the model architecture, the features and label of the data schema, the kind of
problem and the metric, and names the task plugin that implements it (`learning.plugin`): its
entry point `package.module:attribute`, version and code hash, which every site checks against
what it installed before it starts. It round-trips through a plain map (`to_dict` / `from_dict`) holding only
str/int/float/bool/list/dict values so that the genesis can store it as canonical CBOR.

Normalisation is part of the task, not of a site: every site scales its features with the same
declared `feature_center` / `feature_scale` (like clinical reference ranges published with the
protocol), because a model trained on per-site statistics would mean different things at each site.
For the built-in data sets these constants are computed once from the public data set; for a
consortium's own data they are combined at genesis from per-site summary statistics
(`learning.normalisation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("binary", "regression", "multiclass")
METRICS = {
    "binary": ("loss", "auc", "accuracy"),
    "regression": ("loss", "rmse", "r2", "mae"),
    "multiclass": ("loss", "accuracy", "macro_f1", "macro_auc"),
}


class TaskError(ValueError):
    """A task spec map is malformed; the message is one sentence naming the field."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What is learned: data schema, model architecture and metric.

    Attributes:
        name: human-readable task name.
        dataset: a built-in data set name or "csv" (each site's own file).
        kind: "binary" (labels 0/1), "multiclass" (labels 0..n_classes-1) or "regression".
        model: a model name the task plugin builds (built-in tabular: "logreg" or "mlp").
        features: feature column names, in model input order.
        label: label column name.
        metric: the headline metric ("auc", "accuracy", "rmse", "r2" or "loss").
        hidden: hidden layer widths of the MLP (ignored by logreg).
        feature_center: per-feature value subtracted before the model (empty = 0).
        feature_scale: per-feature divisor (empty = 1).
        label_center: regression target offset; the model predicts (y - center) / scale.
        label_scale: regression target divisor.
        n_classes: number of classes of a multiclass task (0 otherwise).
        input_shape: the shape of one sample as the model sees it (empty: the flat features).
        entry_point: the task plugin, "package.module:attribute" (empty: built-in tabular).
        version: the plugin version the genesis pins.
        code_hash: SHA-256 (hex) over the source files of the plugin's package (the pin).
    """

    name: str
    dataset: str
    kind: str
    model: str
    features: tuple[str, ...]
    label: str
    metric: str
    hidden: tuple[int, ...] = (32,)
    feature_center: tuple[float, ...] = field(default=())
    feature_scale: tuple[float, ...] = field(default=())
    label_center: float = 0.0
    label_scale: float = 1.0
    n_classes: int = 0
    input_shape: tuple[int, ...] = ()
    entry_point: str = ""
    version: str = ""
    code_hash: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TaskError(f"task kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if (self.kind == "multiclass") != (self.n_classes >= 2):
            raise TaskError("a multiclass task needs n_classes >= 2, and only it has classes")
        if self.input_shape and int(np.prod(self.input_shape)) != len(self.features):
            raise TaskError("task input_shape must hold exactly one value per feature")
        if self.entry_point and ":" not in self.entry_point:
            raise TaskError(f"task entry_point {self.entry_point!r} must be package.module:name")
        if self.metric not in METRICS[self.kind]:
            allowed = ", ".join(METRICS[self.kind])
            raise TaskError(f"metric for a {self.kind} task must be one of {allowed}")
        if not self.features:
            raise TaskError("task must name at least one feature")
        if len(set(self.features)) != len(self.features) or self.label in self.features:
            raise TaskError("task features must be distinct and must not include the label")
        for attr in ("feature_center", "feature_scale"):
            values = getattr(self, attr)
            if values and len(values) != len(self.features):
                raise TaskError(f"task {attr} must have one value per feature")
        if any(s == 0 for s in self.feature_scale) or self.label_scale == 0:
            raise TaskError("task scales must be non-zero")
        if any(h <= 0 for h in self.hidden):
            raise TaskError("task hidden layer widths must be positive")

    @property
    def n_features(self) -> int:
        """Number of model inputs."""
        return len(self.features)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a plain map for the genesis (lists, not tuples)."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "kind": self.kind,
            "model": self.model,
            "features": list(self.features),
            "label": self.label,
            "metric": self.metric,
            "hidden": list(self.hidden),
            "feature_center": [float(v) for v in self.feature_center],
            "feature_scale": [float(v) for v in self.feature_scale],
            "label_center": float(self.label_center),
            "label_scale": float(self.label_scale),
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "entry_point": self.entry_point,
            "version": self.version,
            "code_hash": self.code_hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        """Build a spec from a genesis map; raises TaskError naming the bad field."""
        if not isinstance(data, dict):
            raise TaskError("task spec must be a map")
        required = ("name", "dataset", "kind", "model", "features", "label", "metric")
        for key in required:
            if key not in data:
                raise TaskError(f"task spec is missing the field {key!r}")
        unknown = (
            set(data)
            - set(required)
            - {
                "hidden",
                "feature_center",
                "feature_scale",
                "label_center",
                "label_scale",
                *OPTIONAL_FIELDS,
            }
        )
        if unknown:
            raise TaskError(f"task spec has unknown fields {sorted(unknown)}")
        for key in ("name", "dataset", "kind", "model", "label", "metric", *_STR_FIELDS):
            if key in data and not isinstance(data[key], str):
                raise TaskError(f"task field {key!r} must be a string")
        features = _str_list(data["features"], "features")
        return cls(
            name=data["name"],
            dataset=data["dataset"],
            kind=data["kind"],
            model=data["model"],
            features=features,
            label=data["label"],
            metric=data["metric"],
            hidden=_int_list(data.get("hidden", [32]), "hidden"),
            feature_center=_float_list(data.get("feature_center", []), "feature_center"),
            feature_scale=_float_list(data.get("feature_scale", []), "feature_scale"),
            label_center=_float(data.get("label_center", 0.0), "label_center"),
            label_scale=_float(data.get("label_scale", 1.0), "label_scale"),
            n_classes=_int(data.get("n_classes", 0), "n_classes"),
            input_shape=_int_list(data.get("input_shape", []), "input_shape"),
            entry_point=data.get("entry_point", ""),
            version=data.get("version", ""),
            code_hash=data.get("code_hash", ""),
        )


_STR_FIELDS = ("entry_point", "version", "code_hash")
OPTIONAL_FIELDS = ("n_classes", "input_shape", *_STR_FIELDS)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TaskError(f"task field {name!r} must be an integer")
    return value


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskError(f"task field {name!r} must be a list of strings")
    return tuple(value)


def _int_list(value: Any, name: str) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )
    if not ok:
        raise TaskError(f"task field {name!r} must be a list of integers")
    return tuple(value)


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TaskError(f"task field {name!r} must be a number")
    return float(value)


def _float_list(value: Any, name: str) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise TaskError(f"task field {name!r} must be a list of numbers")
    return tuple(_float(v, name) for v in value)
