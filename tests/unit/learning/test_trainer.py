"""Models and local training: seeded init, deterministic training, FedProx pulls towards global."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import torch

from learning.evaluate import evaluate
from learning.models import build_model, initial_weights, load_view
from learning.plugin import all_sites
from learning.serialize import TensorView, bytes_to_weights
from learning.task import TaskSpec
from learning.trainer import TrainConfig, apply_delta, default_train_config, train
from learning.validation import update_norm


def test_initial_weights_are_reproducible_from_the_seed(cancer: TaskSpec) -> None:
    """The same seed gives the same bytes, another seed other bytes."""
    assert initial_weights(cancer, 7) == initial_weights(cancer, 7)
    assert initial_weights(cancer, 7) != initial_weights(cancer, 8)


def test_mlp_has_the_hidden_layers_of_the_spec(cancer: TaskSpec) -> None:
    """An MLP spec builds Linear layers of the declared widths."""
    mlp = replace(cancer, model="mlp", hidden=(16, 8))
    shapes = {k: v.shape for k, v in bytes_to_weights(initial_weights(mlp, 0)).items()}
    assert shapes["net.0.weight"] == (16, 30)
    assert shapes["net.2.weight"] == (8, 16)
    assert shapes["net.4.weight"] == (1, 8)


def test_training_is_deterministic_and_returns_a_delta(cancer: TaskSpec) -> None:
    """Two runs with one seed give the same update bytes; the update is local - global."""
    site = all_sites(cancer, 4, "iid", seed=0)[0]
    init = initial_weights(cancer, 0)
    config = default_train_config(cancer)
    a, n, stats = train(cancer, init, site.train, config)
    b, _, _ = train(cancer, init, site.train, config)
    assert a == b
    assert n == len(site.train)
    assert stats.steps > 0 and stats.update_norm > 0
    c, _, _ = train(cancer, init, site.train, config.with_seed(1))
    assert c != a


def test_training_improves_the_model(diabetes: TaskSpec) -> None:
    """A few epochs of local training lower the training loss of a regression model."""
    site = all_sites(diabetes, 2, "iid", seed=0)[0]
    init = initial_weights(diabetes, 0)
    update, _, _ = train(diabetes, init, site.train, TrainConfig(epochs=5, lr=0.02))
    before = evaluate(diabetes, init, site.train)["loss"]
    after = evaluate(diabetes, apply_delta(init, update), site.train)["loss"]
    assert after < before


def test_fedprox_keeps_the_update_closer_to_the_global(cancer: TaskSpec) -> None:
    """A large proximal term shrinks the update."""
    site = all_sites(cancer, 4, "iid", seed=0)[0]
    init = initial_weights(cancer, 0)
    plain = TrainConfig(epochs=3, lr=0.1)
    free, _, _ = train(cancer, init, site.train, plain)
    prox, _, _ = train(cancer, init, site.train, replace(plain, fedprox_mu=5.0))
    assert update_norm(bytes_to_weights(prox)) < update_norm(bytes_to_weights(free))


def test_label_flip_trains_the_opposite_way(cancer: TaskSpec) -> None:
    """Training on flipped labels moves the model away from the honest direction."""
    site = all_sites(cancer, 2, "iid", seed=0)[0]
    init = initial_weights(cancer, 0)
    honest, _, _ = train(cancer, init, site.train, TrainConfig(epochs=2))
    flipped, _, _ = train(cancer, init, site.train, TrainConfig(epochs=2, label_flip=True))
    h, f = bytes_to_weights(honest), bytes_to_weights(flipped)
    dot = sum(float(np.sum(h[k] * f[k])) for k in h)
    assert dot < 0


def test_building_the_delta_holds_the_output_not_float64_copies(
    cancer: TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delta of a model with one large tensor is built in chunks: the traced peak is the
    output buffer plus a chunk, not the float64 copies of the whole tensor a norm would need."""
    import learning.trainer as trainer

    monkeypatch.setattr(trainer, "DELTA_CHUNK", 1 << 12)
    mlp = replace(cancer, model="mlp", hidden=(600, 600))  # 600 x 600 floats in one tensor
    init = initial_weights(mlp, 0)
    model = build_model(mlp)
    load_view(model, TensorView(init))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    tracemalloc.start()
    try:
        delta, norm = trainer._delta_blob(model, TensorView(init))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(delta, bytearray) and len(delta) == len(init)
    assert peak < 1.1 * len(init)  # a float64 copy of the big tensor alone is 2 x its bytes
    weights = bytes_to_weights(delta)
    assert all(np.allclose(w, 0.5) for w in weights.values())
    assert norm == pytest.approx(update_norm(weights), rel=1e-9)
