"""Training with MONAI engines: the PILLET-GAN trainer, validation, handlers and the run workflow."""

from .config import TrainingConfig, load_config
from .evaluator import LocalizationEvaluator, LocalizationMetric
from .sampling import BalancedBatchSampler
from .trainer import PilletGANTrainer
from .workflow import train

__all__ = ["BalancedBatchSampler", "LocalizationEvaluator", "LocalizationMetric", "PilletGANTrainer",
           "TrainingConfig", "load_config", "train"]
