"""Models built by the task plugin, with seeded initial weights.

The tabular models: `logreg` is a single linear layer (logistic regression for a binary task,
linear regression for a regression task); `mlp` stacks Linear + ReLU layers of the task's hidden
widths. Both output one value per sample (a logit, or a standardised target). Other models come
from their task (`learning.plugin.Task.build_model`).

Initial weights are drawn with NumPy's PCG64 generator (the PyTorch default: uniform in
±1/sqrt(fan_in), fan_in the product of a weight's dimensions after the first; a bias takes its
layer's weight's fan_in), so the same (task, seed) gives the same bytes on every machine and
PyTorch version. Normalisation layers start at their identity (scale 1, shift 0).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from learning.serialize import TensorView, Weights, weights_to_bytes
from learning.task import TaskSpec


class TabularModel(nn.Module):
    """A feed-forward network with one output; the layers live in `self.net`."""

    def __init__(self, n_inputs: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return one output per row of `x`."""
        out: torch.Tensor = self.net(x).squeeze(-1)
        return out


def build_model(task: TaskSpec) -> nn.Module:
    """Build the task's architecture (weights are not initialised meaningfully)."""
    from learning.plugin import resolve

    return resolve(task).build_model(task)


def model_weights(model: nn.Module) -> Weights:
    """Return the model's parameters as named float32 NumPy arrays."""
    return {
        name: t.detach().cpu().numpy().astype(np.float32, copy=True)
        for name, t in model.state_dict().items()
    }


def load_weights(model: nn.Module, weights: Weights) -> None:
    """Copy named arrays into the model (names and shapes must match)."""
    state = {
        name: torch.from_numpy(np.array(arr, dtype=np.float32)) for name, arr in weights.items()
    }
    model.load_state_dict(state, strict=True)


def load_view(model: nn.Module, base: TensorView) -> None:
    """Copy the blob's tensors into the model one at a time (no second copy of the model)."""
    state = model.state_dict()
    if sorted(state) != base.names:
        raise ValueError("the model blob's tensors do not match the task's model")
    for name, tensor in state.items():
        if tuple(tensor.shape) != base.shape(name):
            raise ValueError(
                f"tensor {name!r} has shape {base.shape(name)}, expected {tuple(tensor.shape)}"
            )
        tensor.reshape(-1).numpy()[:] = base.read(name, 0, base.count(name))


def initial_weights(task: TaskSpec, seed: int) -> bytes:
    """Return the seeded initial model of the task as a safetensors blob."""
    state = build_model(task).state_dict()
    rng = np.random.default_rng([seed, 0x1417])
    weights: Weights = {}
    for name, tensor in sorted(state.items()):
        shape = tuple(tensor.shape)
        prefix, _, last = name.rpartition(".")
        partner = f"{prefix}.{last.replace('bias', 'weight', 1)}" if prefix else last
        weight = state.get(partner.lstrip("."))
        if weight is None or weight.dim() < 2:
            fill = np.zeros if last.startswith("bias") or "running_mean" in last else np.ones
            weights[name] = fill(shape, dtype=np.float32)
            continue
        bound = 1.0 / np.sqrt(int(np.prod(tuple(weight.shape)[1:])))
        weights[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return weights_to_bytes(weights)
