"""Convolutions with tiny output maps as one matrix product on the CPU (the critic's deepest layers).

The critic's last stride-2 layers hold most of its weights on a map of one to four positions (at 64 px:
1024 -> 2048 channels, 2 x 2 -> 1 x 1, 33.5 M weights). oneDNN's backward for such a layer takes about 310 ms
at batch 24 on a 2-core AVX2 CPU; the same product written as ``unfold`` + ``linear`` (im2col) takes a
fraction of it, its double backward (the gradient penalty's) included, and gives the same result up to
float rounding (``benchmarks/bench_train.py``; ``Testing/test_small_output_conv.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MAX_MATMUL_POSITIONS", "SmallOutputConv2d", "small_output_convs"]

#: Output maps of at most this many positions are computed as a matrix product on the CPU.
MAX_MATMUL_POSITIONS = 4


class SmallOutputConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` that computes an output map of at most :data:`MAX_MATMUL_POSITIONS` positions on
    the CPU as ``linear(unfold(x), weight)``; anything else (larger maps, CUDA, groups, non-zero padding modes)
    runs the usual convolution. Same parameters and state dict as the ``nn.Conv2d`` it replaces."""

    def _output_size(self, x: torch.Tensor) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
            for size, pad, dilation, kernel, stride in zip(x.shape[-2:], self.padding, self.dilation,
                                                          self.kernel_size, self.stride, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or x.dim() != 4 or self.groups != 1 or self.padding_mode != "zeros"
                or isinstance(self.padding, str)):
            return super().forward(x)
        rows, cols = self._output_size(x)
        if rows * cols > MAX_MATMUL_POSITIONS:
            return super().forward(x)
        patches = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (B, C k k, positions)
        out = F.linear(patches.transpose(1, 2), self.weight.flatten(1), self.bias)  # (B, positions, out)
        return out.transpose(1, 2).reshape(x.shape[0], self.out_channels, rows, cols)


def small_output_convs(module: nn.Module) -> nn.Module:
    """Replace, in place, every plain 2D ``nn.Conv2d`` inside ``module`` by a :class:`SmallOutputConv2d` holding the
    same parameter objects (no new initialization: the random stream is untouched); returns ``module``."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Conv2d:
                continue
            twin = nn.utils.skip_init(SmallOutputConv2d, child.in_channels, child.out_channels, child.kernel_size,
                                      child.stride, child.padding, child.dilation, child.groups, child.bias is not None,
                                      child.padding_mode, device=child.weight.device, dtype=child.weight.dtype)
            twin.weight = child.weight
            twin.bias = child.bias
            setattr(parent, name, twin)
    return module
