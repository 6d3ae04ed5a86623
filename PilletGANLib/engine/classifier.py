"""Training the classifier baseline (:mod:`PilletGANLib.networks.classifier`) on a PilletGAN manifest.

The same manifest, images, labels, splits, preprocessing and batch sampling (half healthy, half disease) as the
GAN, and its light augmentation (rotation, scale, shift, contrast); MONAI's ``SupervisedTrainer`` with binary
cross-entropy on the opacity logit, AdamW, a cosine learning rate over the run (over the wall-time budget when that
ends it first), validation AUC every ``val_interval`` epochs. The network after the last iteration is exported (no
choice on validation data), calibrated on the healthy validation images like a PilletGAN model, as
``RUN_DIR/model.pt`` + ``model.json`` (kind ``classifier``) through the checksummed model store.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from monai.data import DataLoader, list_data_collate
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import PrepareBatch
from monai.handlers import ROCAUC, StatsHandler, ValidationHandler, from_engine
from monai.transforms import Activationsd

from ..data.datasets import build_dataset, item_geometry
from ..errors import ConfigurationError, DataError
from ..inference.classifier import ClassifierPredictor, calibrate_classifier
from ..model_store import save_model
from ..networks.classifier import CLASSIFIER_KIND, CLASSIFIER_PRESETS, classifier_from_card, classifier_network_config
from ..transforms.pipeline import PreparedImage
from ..version import __version__
from .augment import augment_batch
from .config import check_settings
from .handlers import StopAtWallTime
from .sampling import BalancedBatchSampler
from .workflow import training_records

__all__ = ["ClassifierTrainingConfig", "CosineToBudget", "train_classifier"]

logger = logging.getLogger("PilletGAN.classifier")
CONFIG_FILE = "config.json"


#: The classifier's numeric settings: whole number or not, inclusive bounds (see :func:`check_settings`).
_CLASSIFIER_NUMBERS: dict[str, tuple[bool, float | None, float | None]] = {
    "dropout_prob": (False, 0, 0.99), "image_size": (True, 32, 2048), "margin": (False, 0.01, 1.0),
    "batch_size": (True, 2, 65536), "num_workers": (True, 0, 1024), "learning_rate": (False, 1e-12, 1.0),
    "weight_decay": (False, 0, 10), "epochs": (True, 1, None), "max_minutes": (False, 0, None),
    "val_interval": (True, 1, None), "seed": (True, 0, 2**32 - 1), "calibration_percentile": (False, 0, 100),
}


@dataclass
class ClassifierTrainingConfig:
    """Settings of :func:`train_classifier`.

    Set with ``pilletgan model train-classifier --config FILE --set KEY=VALUE`` (a file lists only what differs from
    these defaults).

    Attributes:
        network: the DenseNet preset: ``densenet121`` (MONAI's DenseNet121, 7.0 M weights) or ``densenet-small``
            (the same design at CPU cost, 80 k weights).
        cam_layer: the layer whose Grad-CAM is the lesion map, a module name of the network such as
            ``features.denseblock3``; null = the preset's (the output of dense block 3).
        dropout_prob: dropout probability of the DenseNet's layers.
        image_size: side of the square network grid in pixels (a multiple of 4, at least 32): each image is padded
            to a square and resized to it, as for the GAN.
        margin: intensities are mapped to ``[-margin, margin]`` by each image's 0.5 and 99.5 percentiles, as for
            the GAN.
        batch_size: images per iteration, half healthy and half disease (even, at least 2).
        num_workers: worker processes that read and preprocess the images.
        cache_dir: folder that keeps the preprocessed images on disk instead of in memory (one subfolder per image
            size and margin, as for the GAN; delete it when the images change); null = in memory.
        train_localization_only: also train on the manifest's localization-only disease images as disease images,
            as the GAN's setting of the same name; validation never uses them.
        augment: the GAN's light random geometry and contrast augmentation of the training images.
        learning_rate: AdamW learning rate at the start; it follows a cosine to 0 over the run.
        weight_decay: AdamW weight decay.
        epochs: training epochs (an epoch is the train split's size in balanced batches).
        max_minutes: wall-time budget in minutes (0 = none): the run stops there, and the cosine learning rate
            follows whichever of the budget and ``epochs`` ends first.
        val_interval: epochs between validations (AUC on the validation images).
        seed: seed of the initialization, the balanced sampling, the augmentation and the patient split.
        calibration_percentile: healthy-pixel percentile of the exported model's mask threshold (the heat scale is
            their 99.9th percentile of the Grad-CAM).
    """

    network: str = "densenet121"
    cam_layer: str | None = None
    dropout_prob: float = 0.0
    image_size: int = 128
    margin: float = 1.0
    batch_size: int = 32
    num_workers: int = 0
    cache_dir: str | None = None
    train_localization_only: bool = False
    augment: bool = True
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 30
    max_minutes: float = 0.0
    val_interval: int = 1
    seed: int = 0
    calibration_percentile: float = 99.0

    def __post_init__(self) -> None:
        check_settings(self, _CLASSIFIER_NUMBERS, ("cam_layer", "cache_dir"),
                       {"network": tuple(sorted(CLASSIFIER_PRESETS))})
        if self.image_size % 4:
            raise ConfigurationError(f"image_size must be a multiple of 4, got {self.image_size}")
        if self.batch_size % 2:
            raise ConfigurationError(f"batch_size must be even (half healthy, half disease), got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _PrepareBatch(PrepareBatch):
    """``(images, labels as (B, 1) floats)`` on the device; with ``generator``, the GAN's augmentation."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def __call__(self, batchdata: dict[str, Any], device: str | torch.device | None = None, non_blocking: bool = False,
                 **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.as_tensor(batchdata["image"]).as_subclass(torch.Tensor).float()
        if self.generator is not None:
            images, _ = augment_batch(images, self.generator)
        labels = torch.as_tensor(batchdata["label"]).float().reshape(-1, 1)
        return images.to(device, non_blocking=non_blocking), labels.to(device, non_blocking=non_blocking)


class CosineToBudget:
    """Set every learning rate to ``base * (1 + cos(pi * p)) / 2`` before each iteration, where ``p`` is the larger
    of the share of ``iterations`` done and the share of the wall-time budget ``seconds`` spent (0: no budget), so
    the rate reaches 0 when the run ends, whichever limit ends it."""

    def __init__(self, optimizer: torch.optim.Optimizer, iterations: int, seconds: float, start_time: float) -> None:
        self.optimizer, self.iterations, self.seconds, self.start_time = optimizer, iterations, seconds, start_time
        self.base = [group["lr"] for group in optimizer.param_groups]

    def progress(self, iteration: int) -> float:
        done = iteration / self.iterations
        if self.seconds:
            done = max(done, (time.time() - self.start_time) / self.seconds)
        return min(1.0, done)

    def __call__(self, engine: Any) -> None:
        factor = (1 + math.cos(math.pi * self.progress(engine.state.iteration))) / 2
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["lr"] = base * factor

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED, self)


def _every(interval: int) -> Any:
    """An ignite event filter that passes every ``interval``-th iteration."""
    return lambda _engine, iteration: iteration % interval == 0


def _card(config: ClassifierTrainingConfig) -> dict[str, Any]:
    network, default_layer = classifier_network_config(config.network, config.dropout_prob)
    return {"name": f"PilletGAN classifier baseline ({config.network})", "kind": CLASSIFIER_KIND,
            "version": __version__, "method": "DenseNet classifier + Grad-CAM", "network": network,
            "cam_layer": config.cam_layer or default_layer,
            "preprocessing": {"image_size": config.image_size, "margin": config.margin, "percentiles": [0.5, 99.5],
                              "pad": "square, symmetric, darkest value"},
            "output": "opacity probability (sigmoid of one logit); map: Grad-CAM at cam_layer"}


def train_classifier(manifest: str | os.PathLike, run_dir: str | os.PathLike, config: ClassifierTrainingConfig,
                     progress: bool = True) -> dict[str, Any]:
    """Train the classifier baseline on the manifest's ``train`` split and export it (see the module docstring).

    Writes ``config.json``, ``model.pt`` + ``model.json`` and ``run.json`` to ``run_dir``; returns the run summary.
    """
    start_time = time.time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_records, val_records = training_records(manifest, config.seed, config.train_localization_only)
    datasets = {name: build_dataset(records, config.image_size, config.margin, cache_dir=config.cache_dir,
                                    num_workers=config.num_workers, progress=progress)
                for name, records in (("train", train_records), ("val", val_records)) if records}
    sampler = BalancedBatchSampler([int(r.is_disease) for r in train_records], config.batch_size, config.seed)
    train_loader = DataLoader(datasets["train"], batch_sampler=sampler, num_workers=config.num_workers,
                              collate_fn=list_data_collate)
    epoch_length = max(1, len(train_records) // config.batch_size)

    torch.manual_seed(config.seed)
    card = _card(config)
    network = classifier_from_card(card).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), config.learning_rate, weight_decay=config.weight_decay)
    augment = torch.Generator().manual_seed(config.seed) if config.augment else None
    trainer = SupervisedTrainer(device=device, max_epochs=config.epochs, train_data_loader=train_loader,
                                network=network, optimizer=optimizer, loss_function=torch.nn.BCEWithLogitsLoss(),
                                epoch_length=epoch_length, prepare_batch=_PrepareBatch(augment),
                                train_handlers=[StatsHandler(name="PilletGAN.classifier", tag_name="loss",
                                                             output_transform=from_engine(["loss"], first=True),
                                                             iteration_log=_every(max(1, epoch_length // 4)))])
    CosineToBudget(optimizer, config.epochs * epoch_length, config.max_minutes * 60.0, start_time).attach(trainer)
    StopAtWallTime(config.max_minutes * 60.0, start_time).attach(trainer)
    history: list[dict[str, float]] = []
    evaluator = None
    if "val" in datasets:
        val_loader = DataLoader(datasets["val"], batch_size=config.batch_size, shuffle=False, num_workers=0,
                                collate_fn=list_data_collate)
        evaluator = SupervisedEvaluator(device=device, val_data_loader=val_loader, network=network,
                                        prepare_batch=_PrepareBatch(),
                                        postprocessing=Activationsd(keys="pred", sigmoid=True),
                                        key_val_metric={"val_auc": ROCAUC(output_transform=from_engine(["pred", "label"]))},
                                        val_handlers=[StatsHandler(name="PilletGAN.classifier.val", iteration_log=False)])
        ValidationHandler(interval=config.val_interval, validator=evaluator, epoch_level=True).attach(trainer)

        @evaluator.on(Events.COMPLETED)
        def _record(engine: Any) -> None:
            history.append({"epoch": trainer.state.epoch, "iteration": trainer.state.iteration,
                            "val_auc": float(engine.state.metrics["val_auc"]),
                            "seconds": round(time.time() - start_time, 1)})

    trainer.run()
    if evaluator is not None and (not history or history[-1]["iteration"] != trainer.state.iteration):
        evaluator.run()  # the budget ended the run between validations: validate what is exported
    network.eval()
    predictor = ClassifierPredictor(network, card, device=device, batch_size=config.batch_size)
    healthy = [PreparedImage(image=None, meta={}, geometry=item_geometry(item),
                             network_input=torch.as_tensor(item["image"]).as_subclass(torch.Tensor).float())
               for item, record in zip(datasets["val"], val_records, strict=True) if not record.is_disease] \
        if "val" in datasets else []
    if not healthy:
        raise DataError("the manifest has no healthy validation images to calibrate the map's threshold on", manifest)
    calibration = calibrate_classifier(predictor, healthy, config.calibration_percentile)
    data = {"manifest": str(Path(manifest).resolve()), "train_images": len(train_records),
            "train_disease": sum(r.is_disease for r in train_records),
            "train_localization_only": sum(r.localization_only for r in train_records),
            "validation_images": len(val_records)}
    training = {"config": config.to_dict(), "iterations": trainer.state.iteration, "epochs": trainer.state.epoch,
                "images_seen": trainer.state.iteration * config.batch_size, "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "torch_threads": torch.get_num_threads(), "wall_time_s": round(time.time() - start_time, 1),
                "data": data, "validation": history}
    save_model(network.state_dict(), {**card, "calibration": calibration, "training": training},
               run_dir / "model.pt")
    summary = {"model": str(run_dir / "model.pt"), "iterations": trainer.state.iteration,
               "epochs": trainer.state.epoch, "wall_time_s": training["wall_time_s"],
               "validation": history[-1] if history else None, "calibration": calibration}
    (run_dir / "run.json").write_text(json.dumps({**summary, "config": config.to_dict()}, indent=2) + "\n",
                                      encoding="utf-8")
    logger.info("classifier baseline: %d iterations (%d epochs) in %.0f s; exported %s", trainer.state.iteration,
                trainer.state.epoch, training["wall_time_s"], summary["model"])
    return summary
