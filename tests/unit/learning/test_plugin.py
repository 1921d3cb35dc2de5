"""Task plugins: the genesis pin is checked before the code runs; built-ins are plugins."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from learning.data import DataError
from learning.plugin import BUILTIN_TASKS, builtin_task, check_installed, code_hash, load_task
from learning.task import TaskError, TaskSpec

PLUGIN = """
from learning.plugin import Task
from learning.tasks.tabular import breast_cancer


class Tiny(Task):
    name = "tiny"
    version = "{version}"
    models = ("logreg",)

    def spec(self, model=None, hidden=None):
        return breast_cancer.spec(model, hidden)

    def build_model(self, spec):
        return breast_cancer.build_model(spec)


task = Tiny()
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway plugin package on sys.path (removed from the import caches afterwards)."""
    package = tmp_path / "tiny_task"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN.format(version="1.0"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    sys.modules.pop("tiny_task", None)
    from learning import plugin

    plugin._loaded.pop("tiny_task:task", None)


def test_every_builtin_is_pinned_and_passes_its_own_check() -> None:
    """A built-in spec names its entry point, version and the hash of its module's source."""
    for name, entry_point in BUILTIN_TASKS.items():
        spec = builtin_task(name)
        assert spec.entry_point == entry_point
        assert spec.code_hash == code_hash(entry_point) and len(spec.code_hash) == 64
        assert check_installed(spec) is load_task(entry_point)


def test_a_plugin_loads_from_its_entry_point(plugin_dir: Path) -> None:
    """An installed package's task object becomes a pinned spec."""
    spec = builtin_task("tiny_task:task")
    assert (spec.entry_point, spec.version) == ("tiny_task:task", "1.0")
    assert check_installed(spec).name == "tiny"


def test_changed_code_is_refused_before_it_runs(plugin_dir: Path) -> None:
    """Another source file than the genesis pinned is one sentence, and is never imported."""
    spec = builtin_task("tiny_task:task")
    sys.modules.pop("tiny_task", None)
    from learning import plugin

    plugin._loaded.clear()
    (plugin_dir / "__init__.py").write_text(PLUGIN.format(version="1.0") + "raise SystemExit\n")
    with pytest.raises(TaskError, match=r"^the installed task tiny_task:task has code hash"):
        check_installed(spec)
    assert "tiny_task" not in sys.modules


def test_another_version_is_refused(plugin_dir: Path) -> None:
    """Same code hash pinned but another version installed: refused, naming both versions."""
    spec = replace(builtin_task("tiny_task:task"), version="2.0", code_hash="")
    with pytest.raises(TaskError, match="is version 1.0 but the genesis pins version 2.0"):
        check_installed(spec)


def test_missing_package_and_bad_entry_points_are_one_sentence() -> None:
    """Not installed, malformed, not a Task: each a clear TaskError or DataError."""
    spec = replace(builtin_task("breast-cancer"), entry_point="no_such_pkg.tasks:task")
    with pytest.raises(TaskError, match="is not installed on this site"):
        check_installed(spec)
    with pytest.raises(TaskError, match="not a learning.plugin.Task"):
        load_task("learning.plugin:BUILTIN_TASKS")
    with pytest.raises(DataError, match="unknown data set 'mnist'"):
        builtin_task("mnist")


def test_unknown_model_is_refused() -> None:
    """A genesis model the installed task does not offer is refused by name."""
    spec = replace(builtin_task("digits"), model="resnet")
    with pytest.raises(TaskError, match="has no model 'resnet'"):
        check_installed(spec)


def test_spec_round_trips_with_its_pin() -> None:
    """The pin and the image shape survive the genesis map."""
    spec = builtin_task("digits")
    assert TaskSpec.from_dict(spec.to_dict()) == spec


def test_a_changed_helper_module_of_the_package_is_refused(plugin_dir: Path) -> None:
    """The pin covers the whole package: editing or adding a helper next to the task counts."""
    (plugin_dir / "helpers.py").write_text("SCALE = 1.0\n")
    spec = builtin_task("tiny_task:task")
    (plugin_dir / "helpers.py").write_text("SCALE = 2.0\n")
    with pytest.raises(TaskError, match="has code hash"):
        check_installed(spec)
    (plugin_dir / "helpers.py").write_text("SCALE = 1.0\n")
    assert check_installed(spec).name == "tiny"
    (plugin_dir / "extra").mkdir()
    (plugin_dir / "extra" / "more.py").write_text("")
    assert code_hash("tiny_task:task") != spec.code_hash
