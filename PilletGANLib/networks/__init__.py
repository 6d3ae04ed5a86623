"""PILLET-GAN networks: generator with lesion traversal attention, PatchGAN critic, deployment wrapper."""

from .attention import FUSIONS, LesionTraversalAttention
from .blocks import InputStatsInstanceNorm2d, ResidualBlock
from .classifier import CLASSIFIER_KIND, CLASSIFIER_PRESETS, classifier_from_card, is_classifier_card
from .conditioning import domain_one_hot, tile_domain
from .discriminator import PatchDiscriminator
from .ensemble import GeneratorEnsemble, ensemble_size, generator_from_card
from .generator import ATTENTIONS, OUTPUTS, PilletGenerator, attention_positions, default_attention_positions
from .lung_fields import LUNG_FIELD_INPUT_SIZE, LungFieldNet
from .translator import HealthyTranslator, export_onnx, export_torchscript

__all__ = [
    "ATTENTIONS",
    "CLASSIFIER_KIND",
    "CLASSIFIER_PRESETS",
    "FUSIONS",
    "LUNG_FIELD_INPUT_SIZE",
    "OUTPUTS",
    "GeneratorEnsemble",
    "HealthyTranslator",
    "InputStatsInstanceNorm2d",
    "LesionTraversalAttention",
    "LungFieldNet",
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
