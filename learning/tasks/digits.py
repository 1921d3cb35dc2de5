"""Built-in image task: scikit-learn's 8x8 handwritten digits, 10 classes, with a small CNN.

1797 grayscale 8x8 images (pixels 0..16) ship with scikit-learn; the global test split and the
sites' partitions are cut as for every `ArrayData` set. A site may instead bring its own images
(`data.path` = a folder of PNG/JPEG files and a labels CSV, `learning.images`), which are
resized to 8x8 and scaled to the same 0..16 range. Normalisation is declared: one centre and
scale for every pixel (the data set's mean and standard deviation), so a convolution sees the
same statistics everywhere in the image. The verdict metric is accuracy; macro-F1 and
macro-AUC are reported too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from learning.data import ArrayData, Split
from learning.images import load_image_folder
from learning.plugin import BuiltinData, Task
from learning.task import TaskSpec
from learning.trainer import TrainConfig

SIDE = 8
PIXEL_MAX = 16.0


def _raw() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.float64)


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


class DigitsTask(Task):
    """The 8x8 digits: multiclass, CNN, accuracy."""

    name = "digits"
    version = "1"
    models = ("cnn",)

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
        return SmallCnn(spec.input_shape[0], spec.input_shape[1], spec.n_classes)

    def load_site(self, spec: TaskSpec, path: Path) -> Split:
        return load_image_folder(spec, path, pixel_max=PIXEL_MAX)

    def builtin(self) -> BuiltinData | None:
        return ArrayData(_raw)

    def train_config(self, spec: TaskSpec) -> TrainConfig | None:
        return TrainConfig(epochs=2, batch_size=32, lr=0.003, optimizer="adam")


task = DigitsTask()
