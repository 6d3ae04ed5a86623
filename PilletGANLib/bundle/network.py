"""The network a MONAI bundle exposes: the generator with a single image input and a single tensor output."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigurationError, ModelError
from ..model_store import load_model
from ..networks import GeneratorEnsemble, PilletGenerator, ensemble_size

__all__ = ["BundleEnsemble", "BundleGenerator", "load_weights", "network_from_card"]


def _healthy_code(healthy_index: int, num_domains: int) -> torch.Tensor:
    if not 0 <= healthy_index < num_domains:
        raise ConfigurationError(f"healthy_index {healthy_index} is not a domain of a {num_domains}-domain generator")
    return F.one_hot(torch.tensor([healthy_index]), num_domains).float()


def _healed_and_difference(translate: Callable[..., tuple[torch.Tensor, Any]], healthy_code: torch.Tensor,
                           x: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)``: the healed image and ``|healed - x|``, translating every image to the Healthy domain."""
    healed, _ = translate(x, healthy_code.to(x.dtype) * torch.ones_like(x[:, :1, 0, 0]))
    return torch.cat([healed, (healed - x).abs()], dim=1)


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
        self.healthy_index = healthy_index
        self.register_buffer("healthy_code", _healthy_code(healthy_index, self.num_domains), persistent=False)

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> BundleGenerator:
        """The (untrained) network a model card describes: its ``network`` arguments and ``healthy_index``."""
        try:
            return cls(healthy_index=int(card.get("healthy_index", 0)), **card["network"])
        except (KeyError, TypeError) as err:
            raise ModelError(f"the model card does not describe a PilletGAN generator ({err})") from err

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _healed_and_difference(super().forward, self.healthy_code, x)


class BundleEnsemble(GeneratorEnsemble):
    """:class:`BundleGenerator` for a :class:`~PilletGANLib.networks.GeneratorEnsemble`: ``forward(x)`` gives the
    members' averaged healed image and its difference to ``x``; the state dict is the ensemble model's.

    Args:
        size: number of member generators.
        healthy_index: index of the Healthy domain.
        generator_kwargs: the members' :class:`~PilletGANLib.networks.PilletGenerator` arguments.
    """

    def __init__(self, size: int, healthy_index: int = 0, **generator_kwargs: Any) -> None:
        super().__init__([PilletGenerator(**generator_kwargs) for _ in range(size)])
        self.healthy_index = healthy_index
        self.register_buffer("healthy_code", _healthy_code(healthy_index, self.num_domains), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _healed_and_difference(super().forward, self.healthy_code, x)


def network_from_card(card: Mapping[str, Any]) -> BundleGenerator | BundleEnsemble:
    """The bundle network for a model card: a :class:`BundleGenerator`, or a :class:`BundleEnsemble` when the
    card's weights hold several generators."""
    size = ensemble_size(card)
    if size == 1:
        return BundleGenerator.from_card(card)
    try:
        return BundleEnsemble(size, healthy_index=int(card.get("healthy_index", 0)), **card["network"])
    except (KeyError, TypeError) as err:
        raise ModelError(f"the model card does not describe a PilletGAN generator ensemble ({err})") from err


def load_weights(network: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load the weights of a PilletGAN model (``.pt`` + ``.json`` card, SHA-256 checked) into ``network``."""
    state, _, weights = load_model(path, map_location="cpu")
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"the weights do not fit the network the bundle built ({err})", weights) from err
