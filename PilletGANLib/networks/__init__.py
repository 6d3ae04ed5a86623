"""PILLET-GAN networks: generator with lesion traversal attention, PatchGAN critic, the healthy translator and its
export."""

from .attention import FUSIONS, LesionTraversalAttention
from .blocks import InputStatsInstanceNorm2d, ResidualBlock
from .classifier import CLASSIFIER_KIND, CLASSIFIER_PRESETS, classifier_from_card, is_classifier_card
from .conditioning import domain_one_hot, tile_domain
from .discriminator import PatchDiscriminator
from .ensemble import GeneratorEnsemble, ensemble_size, generator_from_card
from .export import EXPORT_FORMATS, export_onnx, export_torchscript
from .generator import ATTENTIONS, OUTPUTS, PilletGenerator, attention_positions, default_attention_positions
from .translator import HealthyTranslator

__all__ = [
    "ATTENTIONS",
    "CLASSIFIER_KIND",
    "CLASSIFIER_PRESETS",
    "EXPORT_FORMATS",
    "FUSIONS",
    "OUTPUTS",
    "GeneratorEnsemble",
    "HealthyTranslator",
    "InputStatsInstanceNorm2d",
    "LesionTraversalAttention",
    "PatchDiscriminator",
    "PilletGenerator",
    "ResidualBlock",
    "attention_positions",
    "classifier_from_card",
    "default_attention_positions",
    "domain_one_hot",
    "ensemble_size",
    "export_onnx",
    "export_torchscript",
    "generator_from_card",
    "is_classifier_card",
    "tile_domain",
]
