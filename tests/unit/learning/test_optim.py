"""learning/optim.py applies torch.optim's update rules without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from learning.optim import Adam, Sgd


def _run(make_ours: bool, kind: str, steps: int = 25) -> list[torch.Tensor]:
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    x = torch.randn(40, 6)
    y = torch.randn(40, 2)
    params = list(model.parameters())
    opt: Sgd | Adam | torch.optim.Optimizer
    if kind == "adam":
        opt = Adam(params, lr=0.01) if make_ours else torch.optim.Adam(params, lr=0.01)
    else:
        opt = (
            Sgd(params, lr=0.05, momentum=0.9)
            if make_ours
            else torch.optim.SGD(params, lr=0.05, momentum=0.9)
        )
    for step in range(steps):
        opt.zero_grad()
        batch = slice((step * 8) % 40, (step * 8) % 40 + 8)
        torch.nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_same_trajectory_as_torch_optim(kind: str) -> None:
    ours = _run(True, kind)
    theirs = _run(False, kind)
    start = _run(True, kind, steps=0)
    for a, b, s in zip(ours, theirs, start, strict=True):
        assert not torch.equal(a, s)  # the parameters moved
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_plain_sgd_without_momentum_is_one_gradient_step() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Sgd([p], lr=0.5, momentum=0.0)
    (p**2).sum().backward()
    opt.step()
    assert p.detach().tolist() == [0.0, 0.0]


def test_training_does_not_load_the_compiler() -> None:
    probe = (
        "import sys, torch\n"
        "from learning.optim import Adam, Sgd\n"
        "m = torch.nn.Linear(3, 1)\n"
        "for opt in (Sgd(m.parameters(), lr=0.1, momentum=0.9), Adam(m.parameters(), lr=0.1)):\n"
        "    opt.zero_grad(); m(torch.ones(2, 3)).sum().backward(); opt.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_adam_in_chunks_follows_the_same_trajectory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adam's denominator built a few elements at a time (a chunk smaller than every layer,
    with a partial last chunk) moves the parameters exactly as one whole-tensor step does."""
    import learning.optim as optim

    whole = _run(True, "adam")
    monkeypatch.setattr(optim, "STEP_CHUNK", 7)
    chunked = _run(True, "adam")
    for a, b in zip(whole, chunked, strict=True):
        assert torch.equal(a, b)
    theirs = _run(False, "adam")
    for a, b in zip(chunked, theirs, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
