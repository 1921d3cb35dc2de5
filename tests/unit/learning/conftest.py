"""Shared fixtures for the learning tests: one thread, small built-in tasks."""

from __future__ import annotations

import pytest
import torch

from learning.plugin import builtin_task
from learning.task import TaskSpec


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """Training in tests uses one thread (the machine is shared)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cancer() -> TaskSpec:
    """The breast-cancer logistic-regression task."""
    return builtin_task("breast-cancer")


@pytest.fixture(scope="session")
def diabetes() -> TaskSpec:
    """The diabetes linear-regression task."""
    return builtin_task("diabetes")
