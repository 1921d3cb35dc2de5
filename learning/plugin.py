"""The task plugin API: what a consortium learns, as code every site installs.

A task is an object of a `Task` subclass, named in the genesis by an importable entry point
`package.module:attribute` and pinned by its `version` and the SHA-256 of that module's source
file. It supplies the model builder, the loader of a site's own files, the loss, the metrics and
the metric that decides the verdict, and the normalisation (declared in the spec it returns, or
combined at genesis from per-site statistics, `learning.normalisation`). The built-in tasks
(`BUILTIN_TASKS`) are plugins on the same API.

Nothing from a peer is ever imported: the entry point comes from the genesis, the code only from
what this site installed, and its source file is hashed and compared with the genesis pin
*before* the module is executed (`check_installed`), so a site running other code refuses to
start with one sentence instead of attesting with different numbers.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from learning.csvdata import load_csv
from learning.data import Split
from learning.metrics import default_metrics
from learning.task import TaskError, TaskSpec

if TYPE_CHECKING:
    from learning.data import SiteData
    from learning.trainer import TrainConfig

BUILTIN_TASKS = {
    "breast-cancer": "learning.tasks.tabular:breast_cancer",
    "diabetes": "learning.tasks.tabular:diabetes",
    "digits": "learning.tasks.digits:task",
    "surveillance": "learning.tasks.surveillance:task",
}
"""Built-in data set names and the entry points of their tasks."""

LEGACY_ENTRY_POINT = "learning.tasks.tabular:csv"
"""The task of a spec that names no entry point (tabular logreg/mlp on a site's CSV)."""


class BuiltinData(Protocol):
    """Data a task ships as code (for the devnet, the simulator and the tests)."""

    def sites(self, spec: TaskSpec, n_sites: int, partition: str, seed: int) -> list[SiteData]:
        """Every site's train and validation splits."""
        ...

    def global_test(self, spec: TaskSpec, seed: int) -> Split:
        """The held-out test split no site trains on."""
        ...

    def pooled_train(self, spec: TaskSpec, seed: int) -> Split:
        """Every site's training data pooled (the centralised baseline's input)."""
        ...


class Task:
    """Base class of a task plugin; override what differs from the defaults of the kind.

    Attributes:
        name: the task's name.
        version: the version the genesis pins (bump it whenever the numbers may change).
        models: the model names `build_model` accepts.
    """

    name = "task"
    version = "0"
    models: tuple[str, ...] = ()

    def spec(self, model: str | None = None, hidden: tuple[int, ...] | None = None) -> TaskSpec:
        """The task spec (schema, kind, metric, declared normalisation) for a model name."""
        raise NotImplementedError

    def build_model(self, spec: TaskSpec) -> nn.Module:
        """A fresh model of the spec's architecture; outputs one logit/value per sample, or
        one logit per class for a multiclass task."""
        raise NotImplementedError

    def load_site(self, spec: TaskSpec, path: Path) -> Split:
        """Load a site's own data file or folder; raise `DataError` with one sentence."""
        return load_csv(spec, path)

    def loss(self, spec: TaskSpec, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of model outputs against (standardised) targets."""
        if spec.kind == "binary":
            return functional.binary_cross_entropy_with_logits(out, target)
        if spec.kind == "multiclass":
            return functional.cross_entropy(out, target.long())
        return functional.mse_loss(out, target)

    def metrics(
        self, spec: TaskSpec, out: np.ndarray[tuple[int, ...], np.dtype[np.float64]], y: np.ndarray
    ) -> dict[str, float]:
        """Loss and metrics of raw outputs `out` against true labels `y` (see learning.metrics)."""
        return default_metrics(spec, out, y)

    def builtin(self) -> BuiltinData | None:
        """Data shipped with the task, or None when every site brings its own."""
        return None

    def train_config(self, spec: TaskSpec) -> TrainConfig | None:
        """Local training defaults that suit the model (None: the generic defaults)."""
        return None


_loaded: dict[str, Task] = {}


def _module_file(entry_point: str) -> tuple[str, str, Path]:
    module, sep, attribute = entry_point.partition(":")
    if not sep or not module or not attribute:
        raise TaskError(f"task entry point {entry_point!r} must be package.module:attribute")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise TaskError(
            f"task {entry_point!r} is not installed on this site (no module {module!r}); "
            "install the consortium's task package"
        )
    return module, attribute, Path(found.origin)


def _package_sources(module: str, module_file: Path) -> list[tuple[str, Path]]:
    """Every Python source of the entry point's top-level package, by path relative to it.

    A task is more than the module that defines it: it calls helpers of its package (models,
    loaders, losses). The pin covers all of them; a top-level module on its own is one file.
    """
    top = module.split(".", 1)[0]
    found = importlib.util.find_spec(top)
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        return [(module_file.name, module_file)]
    sources = []
    for root in sorted(Path(x) for x in locations):
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                sources.append((f"{top}/{path.relative_to(root).as_posix()}", path))
    return sorted(sources)


def code_hash(entry_point: str) -> str:
    """SHA-256 (hex) over every source file of the entry point's package, read without importing.

    Each file contributes its relative path and its bytes, length-prefixed, in path order, so
    adding, removing, renaming or editing any file of the package changes the hash.
    """
    module, _, path = _module_file(entry_point)
    digest = hashlib.sha256(b"bcfl-task-code-v2\0")
    for name, source in _package_sources(module, path):
        data = source.read_bytes()
        for part in (name.encode(), data):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def load_task(entry_point: str) -> Task:
    """Import the installed task object of an entry point (cached)."""
    cached = _loaded.get(entry_point)
    if cached is not None:
        return cached
    module, attribute, _ = _module_file(entry_point)
    task = getattr(importlib.import_module(module), attribute, None)
    if not isinstance(task, Task):
        raise TaskError(f"task entry point {entry_point!r} is not a learning.plugin.Task object")
    _loaded[entry_point] = task
    return task


def check_installed(spec: TaskSpec) -> Task:
    """The installed task of a genesis spec; raise TaskError when it is not the pinned code."""
    if not spec.entry_point:
        return load_task(LEGACY_ENTRY_POINT)
    installed = code_hash(spec.entry_point)
    if spec.code_hash and installed != spec.code_hash:
        raise TaskError(
            f"the installed task {spec.entry_point} has code hash {installed[:12]}… but the "
            f"genesis pins {spec.code_hash[:12]}…; install the consortium's version {spec.version}"
        )
    task = load_task(spec.entry_point)
    if spec.version and task.version != spec.version:
        raise TaskError(
            f"the installed task {spec.entry_point} is version {task.version} but the genesis "
            f"pins version {spec.version}; install the consortium's version"
        )
    if task.models and spec.model not in task.models:
        raise TaskError(
            f"task {spec.entry_point} has no model {spec.model!r} (it offers "
            f"{', '.join(task.models)})"
        )
    return task


def resolve(spec: TaskSpec) -> Task:
    """The task object implementing a spec (no pin check: `check_installed` does that)."""
    return load_task(spec.entry_point or LEGACY_ENTRY_POINT)


def builtin_task(
    name: str, model: str | None = None, hidden: tuple[int, ...] | None = None
) -> TaskSpec:
    """The pinned spec of a built-in data set name, or of an installed entry point."""
    from learning.data import DataError

    entry_point = BUILTIN_TASKS.get(name, name)
    if ":" not in entry_point:
        names = ", ".join(BUILTIN_TASKS)
        raise DataError(f"unknown data set {name!r} (use {names} or package.module:task)")
    try:
        task = load_task(entry_point)
        spec = task.spec(model=model, hidden=hidden)
    except TaskError as exc:
        raise DataError(str(exc)) from None
    if task.models and spec.model not in task.models:
        raise DataError(f"task {name} has no model {spec.model!r} ({', '.join(task.models)})")
    return replace(
        spec, entry_point=entry_point, version=task.version, code_hash=code_hash(entry_point)
    )


def _data(spec: TaskSpec) -> BuiltinData:
    from learning.data import DataError

    data = resolve(spec).builtin()
    if data is None:
        raise DataError(f"task {spec.name!r} ships no data; every site loads its own files")
    return data


def all_sites(spec: TaskSpec, n_sites: int, partition: str, seed: int) -> list[SiteData]:
    """Every site's data of a task that ships data (what the simulator and devnet use)."""
    return _data(spec).sites(spec, n_sites, partition, seed)


def site_data(spec: TaskSpec, site: int, n_sites: int, partition: str, seed: int) -> SiteData:
    """Site `site`'s (0-based) train and validation splits of a task that ships data."""
    from learning.data import DataError

    if not 0 <= site < n_sites:
        raise DataError(f"site index {site} is outside 0..{n_sites - 1}")
    return all_sites(spec, n_sites, partition, seed)[site]


def global_test(spec: TaskSpec, seed: int) -> Split:
    """The held-out global test split of a task that ships data."""
    return _data(spec).global_test(spec, seed)


def pooled_train(spec: TaskSpec, seed: int) -> Split:
    """Every site's training data pooled (the centralised baseline's input)."""
    return _data(spec).pooled_train(spec, seed)
