"""Model architectures and the inference wrapper that bakes in normalisation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """`layers` hidden blocks of Linear -> ReLU -> Dropout, then a linear head."""

    def __init__(self, in_features: int, hidden_units: int, layers: int, dropout: float, out_features: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_units), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_units
        blocks.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class SmallCNN(nn.Module):
    """Two conv blocks and a small head; sized for 8x8 single-channel images.

    No BatchNorm on purpose: it would make DDP results depend on per-rank batch
    statistics and breaks on a final batch of one sample.
    """

    def __init__(self, input_shape: Sequence[int], channels: int, dropout: float, n_classes: int) -> None:
        super().__init__()
        in_ch, height, width = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels * 2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = channels * 2 * (height // 2) * (width // 2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat, 64),
            nn.ReLU(),
            nn.Linear(64, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class InferenceModel(nn.Module):
    """Raw features in, predictions out: the deployable/exported module.

    Training runs `core` on pre-standardised arrays; this wrapper replays the
    same standardisation (and, for regression, un-scales the target) so ONNX
    consumers feed raw feature values.
    """

    def __init__(
        self,
        core: nn.Module,
        x_mean: torch.Tensor,
        x_std: torch.Tensor,
        y_mean: torch.Tensor | None = None,
        y_std: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.core = core
        self.register_buffer("x_mean", x_mean.detach().clone().float())
        self.register_buffer("x_std", x_std.detach().clone().float())
        self.rescale_output = y_mean is not None
        if y_mean is not None and y_std is not None:
            self.register_buffer("y_mean", y_mean.detach().clone().float())
            self.register_buffer("y_std", y_std.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.core((x - self.x_mean) / self.x_std)
        if self.rescale_output:
            out = out * self.y_std + self.y_mean
        return out


def n_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
