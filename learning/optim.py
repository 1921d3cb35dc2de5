"""SGD with momentum and Adam, the update rules of `torch.optim`, in plain in-place tensor ops.

`torch.optim`'s `step()` wrapper imports `torch._dynamo` on the first step (for graph breaks
under `torch.compile`), which loads about 800 modules and 80 MB of resident memory into every
daemon that trains, for a compiler bcfl never uses. These two classes apply the same formulas
(PyTorch's documented algorithms, no weight decay, no dampening, no Nesterov, no AMSGrad), and
tests/unit/learning/test_optim.py checks them step for step against `torch.optim`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

STEP_CHUNK = 1 << 20  # elements of a parameter whose Adam denominator is built at a time


class Optimizer:
    """Parameters that own gradients, and the step that moves them."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not lr > 0:
            raise ValueError("the learning rate must be positive")
        self.lr = lr

    def zero_grad(self) -> None:
        """Drop every gradient (the next backward pass allocates fresh ones)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply one update from the current gradients."""
        raise NotImplementedError


class Sgd(Optimizer):
    """v <- momentum * v + g (v = g on the first step); p <- p - lr * v."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, momentum: float) -> None:
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError("SGD momentum must be in [0, 1)")
        self.momentum = momentum
        self.buffers: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            if self.momentum:
                buf = self.buffers.get(i)
                if buf is None:
                    buf = self.buffers[i] = grad.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-self.lr)


class Adam(Optimizer):
    """Adam (Kingma and Ba 2015) with bias correction, as `torch.optim.Adam` computes it."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.first: dict[int, torch.Tensor] = {}
        self.second: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        correction1 = 1 - self.beta1**self.steps
        correction2_sqrt = math.sqrt(1 - self.beta2**self.steps)
        step_size = self.lr / correction1
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            m, v = self.first.get(i), self.second.get(i)
            if m is None or v is None:  # the moments are allocated once, on the first step
                m = self.first[i] = torch.zeros_like(p)
                v = self.second[i] = torch.zeros_like(p)
            m.lerp_(grad, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            # the denominator is the one temporary: built STEP_CHUNK elements at a time (the
            # rule is elementwise), so a large layer costs a chunk, not a fifth copy of itself
            if not (p.is_contiguous() and m.is_contiguous() and v.is_contiguous()):
                p.addcdiv_(m, v.sqrt().div_(correction2_sqrt).add_(self.eps), value=-step_size)
                continue
            flat_p, flat_m, flat_v = p.view(-1), m.view(-1), v.view(-1)
            for start in range(0, flat_p.numel(), STEP_CHUNK):
                piece = slice(start, start + STEP_CHUNK)
                denom = flat_v[piece].sqrt().div_(correction2_sqrt).add_(self.eps)
                flat_p[piece].addcdiv_(flat_m[piece], denom, value=-step_size)
