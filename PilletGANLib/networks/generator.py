"""PILLET-GAN generator: the Fixed-Point GAN generator with lesion traversal attention at chosen places."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from ..errors import ConfigurationError
from .attention import FUSIONS, LesionTraversalAttention
from .blocks import GENERATOR_NORM, ResidualBlock
from .conditioning import domain_one_hot, tile_domain

__all__ = ["ATTENTIONS", "OUTPUTS", "PilletGenerator", "attention_positions", "default_attention_positions"]

ATTENTIONS = ("lta", "none")
OUTPUTS = ("tanh_residual", "clamp_residual")


def attention_positions(num_res_blocks: int) -> tuple[str, ...]:
    """Every place an LTA module can sit, in network order: after the stem, each down-sampling stage,
    each residual block and each up-sampling stage (``stem, down1, down2, res1..resN, up1, up2``)."""
    return ("stem", "down1", "down2", *(f"res{i}" for i in range(1, num_res_blocks + 1)), "up1", "up2")


def default_attention_positions(num_res_blocks: int) -> tuple[str, ...]:
    """The design's default: mid and end of the bottleneck, then each up-sampling stage
    (``("res3", "res6", "up1", "up2")`` for 6 residual blocks)."""
    middle = max(1, num_res_blocks // 2)
    return tuple(dict.fromkeys((f"res{middle}", f"res{num_res_blocks}", "up1", "up2")))


class PilletGenerator(nn.Module):
    """Domain-conditioned residual generator of PILLET-GAN; ``attention="none"`` is exactly Fixed-Point GAN's.

    Layers (StarGAN / Fixed-Point GAN, every conv without bias, instance norm with affine weights and
    running statistics, ReLU):

    - the target-domain one-hot is tiled over the image and concatenated to it (StarGAN conditioning);
    - stem: 7x7 conv ``in_channels + num_domains -> base``;
    - down1, down2: 4x4 stride-2 convs ``base -> 2 base -> 4 base``;
    - res1..resN: residual blocks at ``4 base`` channels;
    - up1, up2: 4x4 stride-2 transposed convs ``4 base -> 2 base -> base``;
    - head: 7x7 conv ``base -> in_channels`` (no norm, no activation) predicting a residual ``delta``;
    - output ``tanh(x + delta)`` (``"tanh_residual"``, Fixed-Point GAN) or ``clamp(x + delta, -1, 1)``
      (``"clamp_residual"``, which can reproduce inputs that sit exactly at -1 or +1).

    With ``attention="lta"``, a :class:`LesionTraversalAttention` module follows each place named in
    ``attention_at`` (see :func:`attention_positions`; default :func:`default_attention_positions`).
    The LTA modules live in ``self.lta`` only, so the other weights have the same names as in the
    ``"none"`` network and its state dict loads into an LTA generator with ``strict=False``.

    Instance norm always uses per-image statistics, in eval mode too, like the reference at test time
    (see :class:`~PilletGANLib.networks.blocks.InputStatsInstanceNorm2d`).

    ``forward(x, target_domain) -> (x_translated, attention_maps)``: ``x`` is ``B x in_channels x H x W``
    in [-1, 1] with ``H`` and ``W`` multiples of 4; ``target_domain`` holds class indices ``(B,)`` or
    one-hot codes ``(B, num_domains)``; ``attention_maps`` lists the ``B x 1 x h x w`` maps in [0, 1] in
    network order (empty for ``"none"``).
    """

    def __init__(self, in_channels: int = 1, num_domains: int = 2, base_channels: int = 64, num_res_blocks: int = 6,
                 attention: str = "lta", attention_at: Sequence[str] | None = None, fusion: str = "add",
                 output: str = "tanh_residual") -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ConfigurationError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if fusion not in FUSIONS:
            raise ConfigurationError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if output not in OUTPUTS:
            raise ConfigurationError(f"output must be one of {OUTPUTS}, got {output!r}")
        if num_res_blocks < 1:
            raise ConfigurationError(f"num_res_blocks must be at least 1, got {num_res_blocks}")
        self.in_channels = in_channels
        self.num_domains = num_domains
        self.attention = attention
        self.fusion = fusion
        self.output = output

        self.stem = Convolution(2, in_channels + num_domains, base_channels, kernel_size=7, act="RELU",
                                norm=GENERATOR_NORM, bias=False)
        self.down = nn.ModuleList(
            Convolution(2, base_channels * 2**i, base_channels * 2 ** (i + 1), strides=2, kernel_size=4, padding=1,
                        act="RELU", norm=GENERATOR_NORM, bias=False)
            for i in range(2)
        )
        self.bottleneck = nn.ModuleList(ResidualBlock(base_channels * 4) for _ in range(num_res_blocks))
        self.up = nn.ModuleList(
            Convolution(2, base_channels * 2 ** (2 - i), base_channels * 2 ** (1 - i), strides=2, kernel_size=4,
                        padding=1, output_padding=0, is_transposed=True, act="RELU", norm=GENERATOR_NORM, bias=False)
            for i in range(2)
        )
        self.head = Convolution(2, base_channels, in_channels, kernel_size=7, conv_only=True, bias=False)

        channels = dict.fromkeys(attention_positions(num_res_blocks), base_channels * 4)
        channels.update(stem=base_channels, down1=base_channels * 2, up1=base_channels * 2, up2=base_channels)
        requested = default_attention_positions(num_res_blocks) if attention_at is None else tuple(attention_at)
        unknown = sorted(set(requested) - set(channels))
        if unknown:
            raise ConfigurationError(f"unknown attention positions {unknown}; choose from {tuple(channels)}")
        #: Places that carry an LTA module, in network order (empty for ``attention="none"``).
        self.attention_at = tuple(p for p in channels if p in requested) if attention == "lta" else ()
        self.lta = nn.ModuleDict(
            {p: LesionTraversalAttention(channels[p], num_domains, fusion=fusion) for p in self.attention_at}
        )

    #: Python-side helpers that TorchScript leaves out when it scripts the generator.
    __jit_unused_properties__ = ("lta_modules",)

    @property
    def lta_modules(self) -> dict[str, LesionTraversalAttention]:
        """The LTA modules by position, in network order."""
        return dict(self.lta.items())

    def gammas(self) -> dict[str, nn.Parameter]:
        """The fusion weights ``gamma`` by position (``"add"`` fusion only; empty otherwise)."""
        return {p: m.gamma for p, m in self.lta.items() if m.fusion == "add"}

    def _attend(self, position: str, features: torch.Tensor, target_domain: torch.Tensor,
                maps: list[torch.Tensor]) -> torch.Tensor:
        # a loop over the ModuleDict rather than self.lta[position]: TorchScript indexes module containers
        # only with constants
        for name, module in self.lta.items():
            if name == position:
                features, attention_map = module(features, target_domain)
                maps.append(attention_map)
        return features

    def forward(self, x: torch.Tensor, target_domain: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ConfigurationError(f"the generator takes B x {self.in_channels} x H x W images with H and W multiples "
                                     f"of 4, got shape {list(x.shape)}")
        code = domain_one_hot(target_domain, self.num_domains, x.dtype)
        maps: list[torch.Tensor] = []
        h = self._attend("stem", self.stem(torch.cat([x, tile_domain(code, x)], dim=1)), target_domain, maps)
        for i, layer in enumerate(self.down):
            h = self._attend(f"down{i + 1}", layer(h), target_domain, maps)
        for i, block in enumerate(self.bottleneck):
            h = self._attend(f"res{i + 1}", block(h), target_domain, maps)
        for i, layer in enumerate(self.up):
            h = self._attend(f"up{i + 1}", layer(h), target_domain, maps)
        delta = self.head(h)
        if self.output == "tanh_residual":
            return torch.tanh(x + delta), maps
        return torch.clamp(x + delta, -1.0, 1.0), maps
