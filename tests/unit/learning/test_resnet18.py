"""The digits task's resnet18: about 11 M parameters, every tensor a float32 parameter."""

from __future__ import annotations

import numpy as np
import torch

from learning.models import build_model, initial_weights, load_weights
from learning.plugin import builtin_task
from learning.serialize import bytes_to_weights


def test_resnet18_has_11m_float32_parameters_and_no_buffers() -> None:
    """No BatchNorm counters: the state dict is exactly the parameters, all float32."""
    task = builtin_task("digits", model="resnet18")
    model = build_model(task)
    n_params = sum(p.numel() for p in model.parameters())
    assert 11_000_000 < n_params < 11_300_000
    assert list(model.buffers()) == []
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())


def test_resnet18_round_trips_its_initial_weights_and_classifies_8x8_images() -> None:
    """The seeded initial blob loads into the model, which returns ten logits per image."""
    task = builtin_task("digits", model="resnet18")
    blob = initial_weights(task, 0)
    assert 44_000_000 < len(blob) < 46_000_000
    model = build_model(task)
    load_weights(model, bytes_to_weights(blob))
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.zeros((3, 64), dtype=np.float32)))
    assert logits.shape == (3, 10)
