"""Generator ensembles: several PILLET-GAN generators with one architecture whose healed images are averaged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigurationError, ModelError
from ..model_store import card_number
from .generator import PilletGenerator

__all__ = ["GeneratorEnsemble", "ensemble_size", "generator_from_card"]

#: The whole-number sizes a card's ``network`` may give, and their bounds (beyond them a card asks for more memory
#: than any machine has).
_NETWORK_SIZES = {"in_channels": (1, 16), "num_domains": (2, 64), "base_channels": (1, 1024), "num_res_blocks": (0, 64)}


class GeneratorEnsemble(nn.Module):
    """Translate with every member and average: ``forward(x, target) -> (mean healed, mean attention maps)``.

    The members are independently trained generators of one architecture (same ``network`` arguments), so
    their healed images and their attention maps have the same shapes and are averaged element-wise. The
    lesion map of the ensemble is then the input minus the averaged healing, which keeps what the members
    agree on and dilutes what one run alone paints. The interface is :class:`PilletGenerator`'s, so the
    predictor, the deployment translator and the bundle use an ensemble as they use one generator.

    Args:
        members: the generators (at least one); their state-dict keys become ``members.<i>.<key>``.
    """

    def __init__(self, members: Sequence[PilletGenerator]) -> None:
        super().__init__()
        if not members:
            raise ConfigurationError("a generator ensemble needs at least one member")
        domains = {m.num_domains for m in members}
        if len(domains) != 1:
            raise ConfigurationError(f"ensemble members translate between different numbers of domains: {sorted(domains)}")
        self.members = nn.ModuleList(members)
        self.num_domains = members[0].num_domains
        self.in_channels = members[0].in_channels

    def forward(self, x: torch.Tensor, target_domain: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # explicit loops: TorchScript scripts neither zip(*...) nor comprehensions over a ModuleList
        healed: list[torch.Tensor] = []
        maps: list[list[torch.Tensor]] = []
        for member in self.members:
            member_healed, member_maps = member(x, target_domain)
            healed.append(member_healed)
            maps.append(member_maps)
        attention = [torch.stack([m[i] for m in maps]).mean(0) for i in range(len(maps[0]))]
        return torch.stack(healed).mean(0), attention


def ensemble_size(card: Mapping[str, Any]) -> int:
    """How many generators a model card's weights hold: its ``ensemble`` member list, else one."""
    members = card.get("ensemble")
    if members is None:
        return 1
    if not isinstance(members, list) or not members:
        raise ModelError("the model card's 'ensemble' must list its member generators")
    return len(members)


def generator_from_card(card: Mapping[str, Any]) -> PilletGenerator | GeneratorEnsemble:
    """The (untrained) network a model card describes: one :class:`PilletGenerator` built from its ``network``
    arguments, or a :class:`GeneratorEnsemble` of as many as its ``ensemble`` lists."""
    if card.get("kind") == "classifier":
        raise ModelError("this model is a classifier baseline (kind 'classifier'), not a PilletGAN generator: "
                         "`pilletgan evaluate --model` scores it; the other commands run generators")
    for key, (low, high) in _NETWORK_SIZES.items():  # an absent size takes the generator's default
        card_number(card, key, low, section="network", integer=True, low=low, high=high)
    try:
        network = dict(card["network"])
        size = ensemble_size(card)
        if size == 1:
            return PilletGenerator(**network)
        return GeneratorEnsemble([PilletGenerator(**network) for _ in range(size)])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"the model card does not describe a PilletGAN generator ({err})") from err
