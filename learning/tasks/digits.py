"""Built-in image task: scikit-learn's 8x8 handwritten digits, 10 classes, with a small CNN.

1797 grayscale 8x8 images (pixels 0..16) ship with scikit-learn; the global test split and the
sites' partitions are cut as for every `ArrayData` set. A site may instead bring its own images
(`data.path` = a folder of PNG/JPEG files and a labels CSV, `learning.images`), which are
resized to 8x8 and scaled to the same 0..16 range. Normalisation is declared: one centre and
scale for every pixel (the data set's mean and standard deviation), so a convolution sees the
same statistics everywhere in the image. The verdict metric is accuracy; macro-F1 and
macro-AUC are reported too.

`resnet18` is the large model (He et al. 2016, about 11.2 M parameters, 45 MB of float32),
adapted to 8x8 single-channel input: a 3x3 stride-1 stem without max-pool, so the four stages
see 8x8, 4x4, 2x2 and 1x1. BatchNorm is replaced by GroupNorm (32 groups), the usual choice in
federated learning (Hsieh et al. 2020, "The Non-IID Data Quagmire"): it has no running
statistics, so every tensor of the model is a float32 parameter (no int64 batch counter to
serialise), evaluation does not depend on the batch, and aggregation stays byte-deterministic.
It trains with SGD and momentum, which keeps one extra copy of the weights where Adam keeps two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from learning import bundled
from learning.data import ArrayData, Split
from learning.images import load_image_folder
from learning.plugin import BuiltinData, Task
from learning.task import TaskSpec
from learning.trainer import TrainConfig

SIDE = 8
PIXEL_MAX = 16.0


def _raw() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    return bundled.digits()


class SmallCnn(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and two linear layers (about 40 k parameters)."""

    def __init__(self, channels: int, side: int, n_classes: int) -> None:
        super().__init__()
        self.shape = (channels, side, side)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * (side // 2) ** 2, 64), nn.ReLU(), nn.Linear(64, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, one row per flat image of `x`."""
        out: torch.Tensor = self.head(self.features(x.view(-1, *self.shape)))
        return out


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels), channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (a 1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _norm(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        result: torch.Tensor = torch.relu(out + self.shortcut(x))
        return result


class ResNet18(nn.Module):
    """ResNet-18 for small single-image inputs (stem without down-sampling), GroupNorm."""

    def __init__(self, channels: int, side: int, n_classes: int) -> None:
        super().__init__()
        self.shape = (channels, side, side)
        self.stem = nn.Sequential(
            nn.Conv2d(channels, 64, 3, padding=1, bias=False), _norm(64), nn.ReLU()
        )
        stages: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, one row per flat image of `x`."""
        out: torch.Tensor = self.head(self.stages(self.stem(x.view(-1, *self.shape))))
        return out


class DigitsTask(Task):
    """The 8x8 digits: multiclass, CNN, accuracy."""

    name = "digits"
    version = "1"
    models = ("cnn", "resnet18")

    def spec(self, model: str | None = None, hidden: tuple[int, ...] | None = None) -> TaskSpec:
        x, _ = _raw()
        n = SIDE * SIDE
        return TaskSpec(
            name="digits",
            dataset="digits",
            kind="multiclass",
            model=model or "cnn",
            features=tuple(f"pixel_{r}_{c}" for r in range(SIDE) for c in range(SIDE)),
            label="digit",
            metric="accuracy",
            hidden=hidden or (64,),
            feature_center=(float(x.mean()),) * n,
            feature_scale=(float(x.std()),) * n,
            n_classes=10,
            input_shape=(1, SIDE, SIDE),
        )

    def build_model(self, spec: TaskSpec) -> nn.Module:
        side = spec.input_shape[1]
        if spec.model == "resnet18":
            return ResNet18(spec.input_shape[0], side, spec.n_classes)
        return SmallCnn(spec.input_shape[0], side, spec.n_classes)

    def load_site(self, spec: TaskSpec, path: Path) -> Split:
        return load_image_folder(spec, path, pixel_max=PIXEL_MAX)

    def builtin(self) -> BuiltinData | None:
        return ArrayData(_raw)

    def train_config(self, spec: TaskSpec) -> TrainConfig | None:
        if spec.model == "resnet18":
            return TrainConfig(epochs=1, batch_size=32, lr=0.02, optimizer="sgd", momentum=0.9)
        return TrainConfig(epochs=2, batch_size=32, lr=0.003, optimizer="adam")


task = DigitsTask()
