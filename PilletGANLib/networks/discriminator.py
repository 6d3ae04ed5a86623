"""PatchGAN critic with a domain classification head (StarGAN / Fixed-Point GAN discriminator)."""

from __future__ import annotations

from itertools import pairwise

import torch
from monai.networks.blocks import Convolution
from torch import nn

from ..errors import ConfigurationError
from .small_output_conv import small_output_convs

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """WGAN critic on patches plus a domain classifier, as in StarGAN / Fixed-Point GAN.

    ``num_layers`` 4x4 stride-2 convs (with bias, no norm) each followed by LeakyReLU(0.01), doubling
    the channels from ``base_channels``; then two heads on the final ``image_size / 2**num_layers``
    map: realness, a 3x3 conv to one channel (no bias), and domain logits, a conv whose kernel covers
    the whole final map (no bias).

    The domain head's kernel derives from the image size, so ``image_size`` must be known at
    construction and the critic only takes ``image_size`` x ``image_size`` inputs (at least
    ``2**num_layers`` pixels: 64 with the default 6 layers).

    ``forward(x) -> (realness, logits)``: ``B x 1 x h x w`` patch scores and ``(B, num_domains)`` logits.

    Its convs are :class:`~PilletGANLib.networks.small_output_conv.SmallOutputConv2d`: on the CPU the deepest
    layers (output maps of at most four positions) run as one matrix product, which makes a critic step at 64 px
    about twice as fast as oneDNN's convolution does (same weights and results).
    """

    def __init__(self, in_channels: int = 1, num_domains: int = 2, image_size: int = 256, base_channels: int = 64,
                 num_layers: int = 6) -> None:
        super().__init__()
        final_size = image_size // 2**num_layers
        if final_size < 1:
            raise ConfigurationError(f"a {num_layers}-layer discriminator needs images of at least {2**num_layers} "
                                     f"pixels, got image_size={image_size}")
        self.in_channels = in_channels
        self.image_size = image_size
        channels = [in_channels] + [base_channels * 2**i for i in range(num_layers)]
        self.main = nn.Sequential(*(
            Convolution(2, c_in, c_out, strides=2, kernel_size=4, padding=1,
                        act=("leakyrelu", {"negative_slope": 0.01}), norm=None, bias=True)
            for c_in, c_out in pairwise(channels)
        ))
        self.realness = Convolution(2, channels[-1], 1, kernel_size=3, conv_only=True, bias=False)
        self.classifier = Convolution(2, channels[-1], num_domains, kernel_size=final_size, padding=0, conv_only=True,
                                      bias=False)
        small_output_convs(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (self.image_size, self.image_size):
            raise ConfigurationError(f"this discriminator was built for B x {self.in_channels} x {self.image_size} x "
                                     f"{self.image_size} images, got shape {tuple(x.shape)}")
        features = self.main(x)
        return self.realness(features), self.classifier(features).flatten(1)
