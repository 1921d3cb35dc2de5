"""Task spec: plain-map round trip for the genesis and one-sentence errors."""

from __future__ import annotations

from typing import Any

import pytest

from learning.task import TaskError, TaskSpec


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, str | int | float | bool)


def test_round_trip_through_a_plain_map(cancer: TaskSpec) -> None:
    """to_dict gives only plain types and from_dict restores the same spec."""
    data = cancer.to_dict()
    assert _plain(data)
    assert TaskSpec.from_dict(data) == cancer


def test_missing_field_is_named(cancer: TaskSpec) -> None:
    """A missing field is named in the error."""
    data = cancer.to_dict()
    del data["label"]
    with pytest.raises(TaskError, match="'label'"):
        TaskSpec.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "ranking"), ("metric", "rmse"), ("features", "age"), ("n_classes", 3)],
)
def test_bad_values_are_rejected(cancer: TaskSpec, field: str, value: Any) -> None:
    """Unknown kinds and metrics, malformed features, classes on a binary task are refused."""
    data = cancer.to_dict()
    data[field] = value
    with pytest.raises(TaskError):
        TaskSpec.from_dict(data)


def test_unknown_field_is_rejected(cancer: TaskSpec) -> None:
    """A typo in a field name is not silently ignored."""
    data = cancer.to_dict() | {"lable": "x"}
    with pytest.raises(TaskError, match="unknown"):
        TaskSpec.from_dict(data)


def test_every_task_metric_has_a_metric_label() -> None:
    """The closed label set of the model-metric gauge holds every metric a task may headline."""
    from learning.task import METRICS
    from telemetry.labels import MODEL_METRICS

    assert {m for ms in METRICS.values() for m in ms} - {"loss"} <= set(MODEL_METRICS)
