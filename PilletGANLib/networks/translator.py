"""``HealthyTranslator``: the healed twin of a radiograph, from a model card's generator (or ensemble).

The one network wrapper every front door runs: the :class:`~PilletGANLib.inference.Predictor` and the
training evaluator call :meth:`HealthyTranslator.heal`; the MONAI bundle and ``pilletgan model export``
use its one-input, one-output ``forward``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigurationError
from ..model_store import card_number
from .ensemble import GeneratorEnsemble, generator_from_card
from .generator import PilletGenerator

__all__ = ["HealthyTranslator"]


class HealthyTranslator(nn.Module):
    """Translate every image to the Healthy domain: ``forward(x) -> (B, 2, H, W)``.

    Channel 0 is the healed image ``G(x, healthy)`` in [-1, 1], channel 1 the raw lesion map
    ``|G(x, healthy) - x|``. One input and one tensor output is what MONAI's bundle tools expect
    (``verify_net_in_out``, ``ckpt_export``, ``onnx_export``, ``SupervisedEvaluator``); the healthy one-hot
    code is broadcast over the batch, so traced and exported graphs keep batch and image size dynamic.

    The state dict is the wrapped generator's own (the code is a non-persistent buffer), so a PilletGAN
    ``model.pt`` loads into it as it is, whether MONAI or PilletGAN loads it.

    Args:
        generator: a :class:`PilletGenerator` or :class:`GeneratorEnsemble`.
        healthy_index: index of the Healthy domain.
    """

    def __init__(self, generator: PilletGenerator | GeneratorEnsemble, healthy_index: int = 0) -> None:
        super().__init__()
        if not 0 <= healthy_index < generator.num_domains:
            raise ConfigurationError(f"healthy_index {healthy_index} is not a domain of a {generator.num_domains}-domain "
                                     "generator")
        self.generator = generator
        self.healthy_index = healthy_index
        self.in_channels = generator.in_channels
        self.register_buffer("healthy_code", F.one_hot(torch.tensor([healthy_index]), generator.num_domains).float(),
                             persistent=False)

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> HealthyTranslator:
        """The (untrained) translator a model card describes: its ``network`` (and ``ensemble``) and
        ``healthy_index``."""
        return cls(generator_from_card(card), card_number(card, "healthy_index", 0, integer=True, low=0))

    def heal(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(healed, attention maps)`` of a ``(B, C, H, W)`` batch."""
        return self.generator(x, self.healthy_code.to(x.device, x.dtype) * torch.ones_like(x[:, :1, 0, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        healed, _ = self.heal(x)
        return torch.cat([healed, (healed - x).abs()], dim=1)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The generator's state dict (the model file's keys)."""
        return self.generator.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a generator state dict (a model file's weights)."""
        return self.generator.load_state_dict(state_dict, strict=strict, assign=assign)
