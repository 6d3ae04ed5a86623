"""The network a MONAI bundle exposes: the generator with a single image input and a single tensor output."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigurationError, ModelError
from ..model_store import load_model
from ..networks import PilletGenerator

__all__ = ["BundleGenerator", "load_weights"]


class BundleGenerator(PilletGenerator):
    """A :class:`~PilletGANLib.networks.PilletGenerator` whose ``forward`` translates to the Healthy domain.

    ``forward(x) -> (B, 2, H, W)``: channel 0 is the healed image ``G(x, healthy)`` in [-1, 1], channel 1
    the raw lesion map ``|G(x, healthy) - x|``. One input and one tensor output is what MONAI's bundle
    tools expect (``verify_net_in_out``, ``ckpt_export``, ``onnx_export``, ``SupervisedEvaluator``).

    The healthy code is a non-persistent buffer, so the state dict is exactly the generator's: a
    PilletGAN ``model.pt`` loads into it as it is.

    Args:
        healthy_index: index of the Healthy domain.
        generator_kwargs: the :class:`~PilletGANLib.networks.PilletGenerator` arguments.
    """

    def __init__(self, healthy_index: int = 0, **generator_kwargs: Any) -> None:
        super().__init__(**generator_kwargs)
        if not 0 <= healthy_index < self.num_domains:
            raise ConfigurationError(f"healthy_index {healthy_index} is not a domain of a {self.num_domains}-domain generator")
        self.healthy_index = healthy_index
        self.register_buffer("healthy_code", F.one_hot(torch.tensor([healthy_index]), self.num_domains).float(),
                             persistent=False)

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> BundleGenerator:
        """The (untrained) network a model card describes: its ``network`` arguments and ``healthy_index``."""
        try:
            return cls(healthy_index=int(card.get("healthy_index", 0)), **card["network"])
        except (KeyError, TypeError) as err:
            raise ModelError(f"the model card does not describe a PilletGAN generator ({err})") from err

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        code = self.healthy_code.to(x.dtype) * torch.ones_like(x[:, :1, 0, 0])
        healed, _ = super().forward(x, code)
        return torch.cat([healed, (healed - x).abs()], dim=1)


def load_weights(network: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load the weights of a PilletGAN model (``.pt`` + ``.json`` card, SHA-256 checked) into ``network``."""
    state, _, weights = load_model(path, map_location="cpu")
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"the weights do not fit the network the bundle built ({err})", weights) from err
