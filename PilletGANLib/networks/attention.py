"""Lesion traversal attention (LTA): category-conditioned spatial attention fused into a feature map."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn

from ..errors import ConfigurationError
from .blocks import GENERATOR_NORM
from .conditioning import domain_one_hot, tile_domain

__all__ = ["FUSIONS", "LesionTraversalAttention"]

FUSIONS = ("add", "concat")


class LesionTraversalAttention(nn.Module):
    """Mine the locations of ``F`` that belong to the target domain ``c`` and fuse them back into ``F``.

    - attention ``A = sigmoid(conv_kxk([mean_c(F), max_c(F), E(c)]))``, ``E(c)`` a learned embedding of the
      target domain (``embedding_channels`` values per domain) tiled over the grid;
    - mined features ``M = A * phi(F)``, ``phi`` = 3x3 conv (no bias) -> instance norm -> ReLU;
    - fusion ``"add"``: ``F' = F + gamma * M`` with a learnable scalar ``gamma`` initialized to 0;
      ``"concat"``: ``F' = conv1x1([F, M])``, initialized to ``[I, 0]`` with zero bias, i.e. ``F' = F``.

    Either way the module starts as the identity on ``F``, so a generator with LTA starts as the plain
    Fixed-Point GAN generator. ``forward(F, target_domain) -> (F', A)`` with ``A`` of shape ``B x 1 x h x w``.

    Args:
        channels: channels of ``F``.
        num_domains: number of target domains.
        fusion: ``"add"`` or ``"concat"``.
        kernel_size: kernel of the attention convolution (odd).
        embedding_channels: channels of the tiled domain embedding ``E(c)``.
    """

    def __init__(self, channels: int, num_domains: int, fusion: str = "add", kernel_size: int = 7,
                 embedding_channels: int = 1) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigurationError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if kernel_size % 2 == 0:
            raise ConfigurationError(f"the attention kernel_size must be odd, got {kernel_size}")
        self.num_domains = num_domains
        self.fusion = fusion
        self.embedding = nn.Embedding(num_domains, embedding_channels)
        self.attention_conv = Convolution(2, 2 + embedding_channels, 1, kernel_size=kernel_size, conv_only=True)
        self.phi = Convolution(2, channels, channels, kernel_size=3, act="RELU", norm=GENERATOR_NORM, bias=False)
        if fusion == "add":
            self.gamma = nn.Parameter(torch.zeros(1))
        else:
            self.fuse = Convolution(2, 2 * channels, channels, kernel_size=1, conv_only=True)
            self._init_fuse_as_identity(channels)

    def _init_fuse_as_identity(self, channels: int) -> None:
        """Set the 1x1 fusion conv to ``[I, 0]`` with zero bias, so that ``F' = F`` at initialization."""
        conv = self.fuse.conv
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, :channels, 0, 0].copy_(torch.eye(channels))
            conv.bias.zero_()

    def attention_map(self, features: torch.Tensor, target_domain: torch.Tensor) -> torch.Tensor:
        """``A = sigmoid(conv([mean_c(F), max_c(F), E(c)]))`` in [0, 1], shape ``B x 1 x h x w``."""
        code = domain_one_hot(target_domain, self.num_domains, self.embedding.weight.dtype) @ self.embedding.weight
        descriptors = torch.cat(
            [
                features.mean(dim=1, keepdim=True),
                features.amax(dim=1, keepdim=True),
                tile_domain(code.to(features.dtype), features),
            ],
            dim=1,
        )
        return torch.sigmoid(self.attention_conv(descriptors))

    def forward(self, features: torch.Tensor, target_domain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.attention_map(features, target_domain)
        mined = attention * self.phi(features)
        if hasattr(self, "gamma"):  # "add" fusion; TorchScript resolves hasattr when it compiles
            return features + self.gamma * mined, attention
        return self.fuse(torch.cat([features, mined], dim=1)), attention
