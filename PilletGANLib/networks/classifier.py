"""The classifier baseline: a MONAI DenseNet that scores opacity vs none, read with Grad-CAM.

The map a user would get without a GAN: a 2-D, one-channel DenseNet trained on the same images, labels and splits,
and its Grad-CAM (``monai.visualize.GradCAM``) at a layer that keeps some spatial resolution. Presets:

- ``densenet121``: MONAI's DenseNet121 (init 64, growth 32, blocks 6-12-24-16, 7.0 M weights), Grad-CAM at the
  output of dense block 3 (1/16 of the input side: 8 x 8 at 128 px);
- ``densenet-small``: the same design at CPU cost (init 32, growth 12, blocks 2-4-6-4, bottleneck 2, 80 k weights),
  Grad-CAM at the same place. DenseNet121 trains at about 1 image/s at 128 px on a 2-core CPU, so a 25-minute CPU
  budget sees half an epoch; the small one about 40 images/s.

A model card of kind :data:`CLASSIFIER_KIND` holds ``network`` (the DenseNet arguments, with ``preset``) and
``cam_layer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monai.networks.nets import DenseNet
from torch import nn

from ..errors import ConfigurationError, ModelError

__all__ = ["CLASSIFIER_KIND", "CLASSIFIER_PRESETS", "classifier_from_card", "classifier_network_config",
           "is_classifier_card"]

#: ``kind`` of a classifier baseline's model card.
CLASSIFIER_KIND = "classifier"
#: DenseNet arguments and Grad-CAM layer of each preset (see the module docstring).
CLASSIFIER_PRESETS: dict[str, dict[str, Any]] = {
    "densenet121": {"init_features": 64, "growth_rate": 32, "block_config": [6, 12, 24, 16], "bn_size": 4,
                    "cam_layer": "features.denseblock3"},
    "densenet-small": {"init_features": 32, "growth_rate": 12, "block_config": [2, 4, 6, 4], "bn_size": 2,
                       "cam_layer": "features.denseblock3"},
}
_DENSENET_KEYS = ("init_features", "growth_rate", "block_config", "bn_size", "dropout_prob")
#: Bounds of the whole-number DenseNet sizes a card may give (a card is a file a user may edit; beyond them a network
#: asks for more memory than any machine has), and of each block's layer count.
_DENSENET_SIZES = {"init_features": 1024, "growth_rate": 512, "bn_size": 16}
_MAX_BLOCK_LAYERS = 128


def classifier_network_config(preset: str, dropout_prob: float = 0.0) -> tuple[dict[str, Any], str]:
    """``(network arguments for the card, default Grad-CAM layer)`` of a preset."""
    if preset not in CLASSIFIER_PRESETS:
        raise ConfigurationError(f"unknown classifier network '{preset}' (known: {', '.join(CLASSIFIER_PRESETS)})")
    values = dict(CLASSIFIER_PRESETS[preset])
    cam_layer = values.pop("cam_layer")
    return {"preset": preset, "spatial_dims": 2, "in_channels": 1, "out_channels": 1, **values,
            "dropout_prob": dropout_prob}, cam_layer


def _check_sizes(network: Mapping[str, Any]) -> None:
    """Refuse DenseNet sizes that are not whole numbers within :data:`_DENSENET_SIZES` and ``block_config`` blocks of
    at most :data:`_MAX_BLOCK_LAYERS` layers."""
    def whole(value: Any, high: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= high

    for key, high in _DENSENET_SIZES.items():
        if key in network and not whole(network[key], high):
            raise ModelError(f"the classifier card's network.{key} is {network[key]!r}, not a whole number from 1 to "
                             f"{high}")
    blocks = network.get("block_config", [1])
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 8 or not all(whole(b, _MAX_BLOCK_LAYERS) for b in blocks):
        raise ModelError(f"the classifier card's network.block_config is {blocks!r}, not 1 to 8 blocks of 1 to "
                         f"{_MAX_BLOCK_LAYERS} layers")


def is_classifier_card(card: Mapping[str, Any]) -> bool:
    """Whether a model card describes a classifier baseline rather than a PilletGAN generator."""
    return card.get("kind") == CLASSIFIER_KIND


def classifier_from_card(card: Mapping[str, Any]) -> nn.Module:
    """The (untrained) DenseNet a classifier card describes; :class:`ModelError` when it describes none, or when its
    Grad-CAM layer is not a layer of that network."""
    if not is_classifier_card(card):
        raise ModelError(f"the model card is not a classifier baseline's (kind '{card.get('kind')}')")
    try:
        network = dict(card["network"])
        _check_sizes(network)
        if network.get("spatial_dims", 2) != 2 or network.get("in_channels", 1) != 1 or network.get("out_channels",
                                                                                                    1) != 1:
            raise ModelError("the classifier must be 2-D with one input channel and one output (opacity logit)")
        model = DenseNet(spatial_dims=2, in_channels=1, out_channels=1,
                         **{k: network[k] for k in _DENSENET_KEYS if k in network})
        cam_layer = str(card["cam_layer"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"the model card does not describe a DenseNet classifier ({type(err).__name__}: {err})") from err
    if cam_layer not in dict(model.named_modules()):
        raise ModelError(f"the card's cam_layer '{cam_layer}' is not a layer of the network")
    return model
