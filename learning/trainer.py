"""Local training of the current global model on a site's private data.

`train` returns the update as a DELTA blob (local weights - global weights, float32), the number of
training samples and statistics. It is deterministic for a given (global blob, data, config) on one
machine with a fixed thread count: the shuffling uses a seeded `torch.Generator` and
`torch.set_num_threads(config.threads)` is applied (process-wide) before training.

The optional FedProx term (Li et al. 2020, "Federated Optimization in Heterogeneous Networks")
adds mu/2 * ||w - w_global||^2 to the local loss, which keeps non-IID sites from drifting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from learning.data import Split
from learning.models import build_model, load_view
from learning.optim import Adam, Optimizer, Sgd
from learning.plugin import resolve
from learning.serialize import (
    Blob,
    TensorView,
    bytes_to_weights,
    safetensors_header,
    weights_to_bytes,
)
from learning.task import TaskSpec

OPTIMIZERS = ("sgd", "adam")
DELTA_CHUNK = 1 << 20  # coordinates subtracted and squared at a time when the delta is built


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Local training hyper-parameters of one site."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.0
    fedprox_mu: float = 0.0
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    label_flip: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.threads < 1:
            raise ValueError("epochs must be >= 0, batch_size and threads >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if not (self.lr > 0 and self.fedprox_mu >= 0):
            raise ValueError("lr must be positive and fedprox_mu non-negative")

    def with_seed(self, seed: int) -> TrainConfig:
        """Return the same config with another shuffling seed (one per site and round)."""
        return replace(self, seed=seed)


@dataclass(frozen=True, slots=True)
class TrainStats:
    """What a site reports about its local training (goes into its update receipt)."""

    loss_first_epoch: float
    loss_last_epoch: float
    epochs: int
    steps: int
    seconds: float
    update_norm: float


def default_train_config(task: TaskSpec) -> TrainConfig:
    """Return hyper-parameters that work for the task's model on a few dozen samples per site."""
    declared = resolve(task).train_config(task)
    if declared is not None:
        return declared
    if task.model == "mlp":
        return TrainConfig(epochs=2, batch_size=16, lr=0.01, optimizer="adam")
    if task.kind == "regression":
        # squared loss has larger gradients than cross-entropy: a smaller step keeps SGD stable
        return TrainConfig(epochs=2, batch_size=16, lr=0.02, optimizer="sgd")
    return TrainConfig(epochs=2, batch_size=16, lr=0.1, optimizer="sgd", momentum=0.5)


def _targets(
    task: TaskSpec, y: npt.NDArray[np.float64], label_flip: bool
) -> npt.NDArray[np.float64]:
    if task.kind == "binary":
        return 1.0 - y if label_flip else y
    if task.kind == "multiclass":
        return task.n_classes - 1 - y if label_flip else y
    z = (y - task.label_center) / task.label_scale
    return -z if label_flip else z


def train(
    task: TaskSpec, global_blob: Blob, data: Split, config: TrainConfig
) -> tuple[bytearray, int, TrainStats]:
    """Train the global model on `data`; return (delta blob, number of samples, stats).

    The delta is the buffer it was built in (a `bytearray`, handed over without a copy).
    """
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    base = TensorView(global_blob)
    model = build_model(task)
    load_view(model, base)
    model.to(device)
    # the FedProx anchor is a second copy of the weights: only kept when the term is used
    anchor = [p.detach().clone() for p in model.parameters()] if config.fedprox_mu > 0 else []
    optimizer: Optimizer
    if config.optimizer == "adam":
        optimizer = Adam(model.parameters(), lr=config.lr)
    else:
        optimizer = Sgd(model.parameters(), lr=config.lr, momentum=config.momentum)
    plugin = resolve(task)

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> Any:
        return plugin.loss(task, out, target)

    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32)).to(device)
    targets = _targets(task, data.y.astype(np.float64), config.label_flip)
    y = torch.from_numpy(targets.astype(np.float32)).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(data)
    epoch_losses: list[float] = []
    steps = 0
    model.train()
    for _epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            total += float(loss.detach()) * len(batch)
            if config.fedprox_mu > 0:
                prox = sum(
                    ((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)
                )
                loss = loss + 0.5 * config.fedprox_mu * prox
            loss.backward()
            optimizer.step()
            steps += 1
        epoch_losses.append(total / max(n, 1))
    del optimizer, x, y  # free the optimiser state and gradients before the delta is built
    model.zero_grad(set_to_none=True)
    delta_blob, norm = _delta_blob(model.cpu(), base)
    stats = TrainStats(
        loss_first_epoch=epoch_losses[0] if epoch_losses else float("nan"),
        loss_last_epoch=epoch_losses[-1] if epoch_losses else float("nan"),
        epochs=config.epochs,
        steps=steps,
        seconds=time.perf_counter() - started,
        update_norm=norm,
    )
    return delta_blob, n, stats


def _delta_blob(model: torch.nn.Module, base: TensorView) -> tuple[bytearray, float]:
    """local - global (float32) written straight into one safetensors buffer, and its L2 norm.

    The base is read and the norm accumulated `DELTA_CHUNK` coordinates at a time, so the
    working memory is the model and the output buffer plus O(chunk), never a float64 copy of
    a whole tensor (docs/ARCHITECTURE.md "Memory"). The sum runs chunk by chunk in a fixed
    order, so the norm is the same for the same inputs.
    """
    state = model.state_dict()
    names = sorted(state)
    header = safetensors_header({name: tuple(state[name].shape) for name in names})
    out = bytearray(len(header) + 4 * sum(state[name].numel() for name in names))
    out[: len(header)] = header
    position = len(header)
    total = 0.0
    for name in names:
        local = state[name].detach().reshape(-1).numpy()
        target = np.frombuffer(out, dtype="<f4", count=local.size, offset=position)
        for start in range(0, local.size, DELTA_CHUNK):
            stop = min(start + DELTA_CHUNK, local.size)
            piece = target[start:stop]
            np.subtract(local[start:stop], base.read(name, start, stop), out=piece)
            wide = piece.astype(np.float64)
            total += float(np.dot(wide, wide))
        position += 4 * local.size
    return out, float(np.sqrt(total))


def apply_delta(global_blob: bytes | bytearray, delta_blob: bytes | bytearray) -> bytes:
    """Return global + delta as a model blob (how a single site's local model is formed)."""
    base = bytes_to_weights(global_blob)
    delta = bytes_to_weights(delta_blob)
    return weights_to_bytes({k: (base[k] + delta[k]).astype(np.float32) for k in base})
