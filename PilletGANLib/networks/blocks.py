"""Building blocks of the generator: the instance norm it uses and the residual bottleneck block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Norm
from torch import nn

__all__ = ["GENERATOR_NORM", "InputStatsInstanceNorm2d", "ResidualBlock"]


class InputStatsInstanceNorm2d(nn.InstanceNorm2d):
    """2D instance norm that always normalizes each image with its own statistics, in training and in eval mode.

    It holds exactly what ``nn.InstanceNorm2d(affine=True, track_running_stats=True)`` holds (the
    Fixed-Point GAN reference's norm, so checkpoints are interchangeable) and updates the running
    statistics identically in training mode, but never normalizes with them. The reference never
    calls ``eval()`` at test time, so its translations always use per-image statistics; with plain
    ``nn.InstanceNorm2d`` a generator put in eval mode (as every predictor does) would switch to the
    running averages and translate differently from the network that was trained. In eval mode the
    running statistics are left untouched.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        update = self.training and self.track_running_stats
        return F.instance_norm(
            x,
            self.running_mean if update else None,
            self.running_var if update else None,
            self.weight,
            self.bias,
            use_input_stats=True,
            momentum=self.momentum if self.momentum is not None else 0.0,
            eps=self.eps,
        )


if "INSTANCE_INPUT_STATS" not in Norm.names:
    Norm.add_factory_class("instance_input_stats", InputStatsInstanceNorm2d,
                           "2D instance norm using per-image statistics in eval mode too (PilletGANLib).")

#: Norm of every generator layer, in MONAI's ``(name, arguments)`` form.
GENERATOR_NORM = ("instance_input_stats", {"affine": True, "track_running_stats": True})


class ResidualBlock(nn.Module):
    """StarGAN / Fixed-Point GAN bottleneck block: ``x + IN(conv3x3(ReLU(IN(conv3x3(x)))))``, convs without bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            Convolution(2, channels, channels, kernel_size=3, act="RELU", norm=GENERATOR_NORM, bias=False),
            Convolution(2, channels, channels, kernel_size=3, act=None, norm=GENERATOR_NORM, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)
