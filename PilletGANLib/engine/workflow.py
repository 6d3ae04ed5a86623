"""``train``: one call that builds data, networks, trainer, validation and handlers, runs, and exports.

Used by ``pilletgan train`` and the MONAI bundle's ``train.json``. Under ``torchrun`` every rank
runs it; rank 0 alone logs, validates, checkpoints and exports.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from monai.data import DataLoader, list_data_collate
from monai.handlers import CheckpointLoader, CheckpointSaver, StatsHandler, TensorBoardStatsHandler, ValidationHandler
from torch.utils.tensorboard import SummaryWriter

from ..data.datasets import build_dataset, item_geometry
from ..data.manifest import ManifestRecord, read_manifest
from ..errors import ConfigurationError, DataError
from ..inference.calibration import calibrate
from ..inference.predictor import Predictor
from ..localization import Localizer, card_sections
from ..losses import PilletGANLoss, one_sided, side_balance_weights
from ..model_store import load_network, save_model
from ..networks import PatchDiscriminator, PilletGenerator, classifier_from_card
from ..transforms.pipeline import PreparedImage
from ..version import __version__
from .config import TrainingConfig
from .distributed import DistributedContext, broadcast_parameters, setup_distributed
from .evaluator import LocalizationEvaluator
from .handlers import ImageGridHandler, ResumeSampler, StopAtIteration, StopAtWallTime, StopOnInterrupt, Throughput, every
from .resident import ResidentBatches, ResidentTrainingSet
from .sampling import BalancedBatchSampler
from .trainer import PilletGANTrainer, make_ema
from .warm_start import warm_start

__all__ = ["export_trained_model", "find_resume_checkpoint", "split_records", "train", "training_records"]

logger = logging.getLogger(__name__)
CONFIG_FILE = "config.json"


def split_records(records: list[ManifestRecord], seed: int = 0) -> tuple[list[ManifestRecord], list[ManifestRecord]]:
    """Training and validation records; without a ``split`` column, split by patient (15 % validation)."""
    if all(r.split is None for r in records):
        from ..data.splits import assign_splits

        records = assign_splits(records, val_fraction=0.15, seed=seed)
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "val"]
    if not train:
        raise DataError("the manifest has no training images (split 'train')")
    return train, val


def training_records(manifest: str | os.PathLike, seed: int = 0, localization_only: bool = False
                     ) -> tuple[list[ManifestRecord], list[ManifestRecord]]:
    """The manifest's training and validation records (:func:`split_records`); with ``localization_only`` its
    localization-only disease images train too, and validation never reads them."""
    records = read_manifest(manifest, check_files=True, localization_only=localization_only)
    train, val = split_records(records, seed)
    return train, [r for r in val if not r.localization_only]


def find_resume_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of a run that loads (a file cut short by a crash is skipped)."""
    candidates = sorted(run_dir.glob("checkpoint*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a damaged checkpoint is skipped, the next one tried
            logger.warning("skipping unreadable checkpoint %s (%s)", path, err)
            continue
        if isinstance(state, dict) and "trainer" in state:
            return path
    raise ConfigurationError(f"--resume: no loadable checkpoint in {run_dir}")


def _device(ctx: DistributedContext) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", ctx.local_rank)
    return torch.device("cpu")


def _prepared_from_item(item: dict[str, Any]) -> PreparedImage:
    image = torch.as_tensor(item["image"]).as_subclass(torch.Tensor).float()
    return PreparedImage(image=None, meta={}, network_input=image, geometry=item_geometry(item))


def _model_card(config: TrainingConfig, localizer: Localizer, training: dict[str, Any]) -> dict[str, Any]:
    record = training.get("calibration") or {"status": "not calibrated: no healthy validation images"}
    return {
        "name": "PilletGAN",
        "version": __version__,
        "method": "PILLET-GAN" if config.attention == "lta" else "Fixed-Point GAN",
        "network": config.network_kwargs(),
        "preprocessing": {"image_size": config.image_size, "margin": config.margin,
                          "percentiles": [0.5, 99.5], "pad": "square, symmetric, darkest value"},
        "domains": ["healthy", "disease"],
        "healthy_index": 0,
        **card_sections(localizer.recipe, localizer.calibration, record),
        "training": training,
    }


def _side_weights(left: int, right: int) -> tuple[float, float]:
    """Side-guidance weights for ``left`` and ``right`` one-sided training images (logged)."""
    if left < 1 or right < 1:
        logger.warning("side guidance: the training set holds %d left- and %d right-sided images; it cannot be "
                       "balanced and sees one side only", left, right)
    else:
        logger.info("side guidance: %d left- and %d right-sided training images, weighted to count equally",
                    left, right)
    return side_balance_weights(left, right)


def _counterfactual_classifier(config: TrainingConfig, device: torch.device) -> torch.nn.Module | None:
    """The frozen classifier of ``lambda_counterfactual`` (checksum checked), or None when the term is off; it must
    read the run's image size and margin."""
    if config.lambda_counterfactual <= 0:
        return None
    network, card = load_network(config.counterfactual_classifier, classifier_from_card)
    preprocessing = card.get("preprocessing", {})
    if (preprocessing.get("image_size"), preprocessing.get("margin")) != (config.image_size, config.margin):
        raise ConfigurationError(f"counterfactual_classifier reads {preprocessing.get('image_size')} px images with "
                                 f"margin {preprocessing.get('margin')}, the run {config.image_size} px with margin "
                                 f"{config.margin}: train it with the run's image_size and margin",
                                 config.counterfactual_classifier)
    logger.info("counterfactual healing: lambda %.3g, classifier %s", config.lambda_counterfactual, card.get("path"))
    return network.to(device)


def _sampler(labels: list[int], config: TrainingConfig, rank: int, loss: PilletGANLoss,
             resident: ResidentTrainingSet | None) -> BalancedBatchSampler:
    """The balanced sampler; with a resident set, its one-sided images set the side weights and, with
    ``side_share``, fill that share of each disease half."""
    focus: list[int] = []
    if resident is not None and (loss.lambda_side > 0 or config.side_share > 0):
        eligible = (resident.labels == 1) & resident.has_truth  # diseased, with truth
        left, right = (side.cpu() for side in one_sided(resident.lesions, eligible))
        if loss.lambda_side > 0:
            loss.side_weights = _side_weights(int(left.sum()), int(right.sum()))
        if config.side_share > 0:
            focus = torch.nonzero(left | right).flatten().tolist()
    sampler = BalancedBatchSampler(labels, config.batch_size, config.seed, rank, focus, config.side_share)
    if config.side_share > 0:
        logger.info("one-sided oversampling: %d of each batch's %d disease images drawn from the %d one-sided "
                    "training images", sampler.focus_slots, sampler.half, len(focus))
    return sampler


def train(manifest: str | os.PathLike, run_dir: str | os.PathLike, config: TrainingConfig,
          resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train PILLET-GAN (or Fixed-Point GAN with ``attention='none'``) and export the model.

    Writes to ``run_dir``: ``config.json``, TensorBoard events, checkpoints (``checkpoint_*.pt``:
    generator, discriminator, EMA, both optimizers, trainer state), ``best.pt`` (generator by the
    validation metric ``best_metric``), ``model.pt`` + ``model.json`` (the exported, calibrated model)
    and ``run.json``. Returns the run summary.
    """
    start_time = time.time()
    run_dir = Path(run_dir)
    ctx = setup_distributed("cuda" if torch.cuda.is_available() else "cpu")
    device = _device(ctx)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)

    train_records, val_records = training_records(manifest, config.seed, config.train_localization_only)
    if config.val_max_images and len(val_records) > config.val_max_images:
        val_records = val_records[: config.val_max_images]
    show = progress and ctx.is_main
    localizer = Localizer(config.recipe)
    train_ds = build_dataset(train_records, config.image_size, config.margin, cache_dir=config.cache_dir,
                             num_workers=config.num_workers, progress=show,
                             lung_fields=config.edit_region == "lungs", lung_margin=config.recipe.lung_margin)
    loss = PilletGANLoss(**config.loss_kwargs())
    resident = ResidentTrainingSet(train_ds, device, progress=show, truth=loss.uses_truth or config.side_share > 0) \
        if config.resident_data else None
    sampler = _sampler([1 if r.is_disease else 0 for r in train_records], config, ctx.rank, loss, resident)
    if resident is not None:
        train_loader = ResidentBatches(resident, sampler)
    else:
        train_loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=config.num_workers,
                                  collate_fn=list_data_collate, persistent_workers=config.num_workers > 0)

    torch.manual_seed(config.seed)
    generator = PilletGenerator(**config.network_kwargs()).to(device)
    discriminator = PatchDiscriminator(**config.discriminator_kwargs()).to(device)
    ema_start = warm_start(config.init_from, generator, discriminator) if config.init_from and not resume else None
    if config.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    broadcast_parameters(generator)
    broadcast_parameters(discriminator)
    scaled = config.batch_scaled(ctx.world_size)
    if config.batch_scaling != "none":
        logger.info("batch_scaling %s: global batch %d = %.3g x reference_batch %d: lr_g %.3g, lr_d %.3g, ema_decay "
                    "%.6g", config.batch_scaling, config.batch_size * ctx.world_size, scaled["ratio"],
                    config.reference_batch, scaled["lr_g"], scaled["lr_d"], scaled["ema_decay"])
    g_optimizer = config.optimizer(generator, scaled["lr_g"])
    d_optimizer = config.optimizer(discriminator, scaled["lr_d"])
    ema = make_ema(generator) if config.ema_decay > 0 else None
    if ema is not None and ema_start is not None:
        ema.load_state_dict(ema_start)

    epoch_length = max(1, len(train_ds) // config.batch_size)  # one pass over the data, whatever the total
    trainer = PilletGANTrainer(device=device, max_epochs=math.ceil(config.iterations / epoch_length),
                               train_data_loader=train_loader, epoch_length=epoch_length, generator=generator,
                               discriminator=discriminator, g_optimizer=g_optimizer, d_optimizer=d_optimizer,
                               loss=loss, max_iterations=config.iterations, n_critic=config.n_critic,
                               gp_interval=config.gp_interval,
                               ema_generator=ema, ema_decay=scaled["ema_decay"], lr_decay_start=config.lr_decay_start,
                               bf16=config.amp, channels_last=config.channels_last, compile=config.compile,
                               augment=config.augment,
                               edit_region=config.edit_region, lung_margin=config.recipe.lung_margin,
                               seed=config.seed, rank=ctx.rank,
                               counterfactual_classifier=_counterfactual_classifier(config, device))
    save_dict: dict[str, Any] = {"generator": generator, "discriminator": discriminator, "g_optimizer": g_optimizer,
                                 "d_optimizer": d_optimizer, "trainer": trainer}
    if ema is not None:
        save_dict["ema"] = ema
    if resume:
        CheckpointLoader(load_path=str(find_resume_checkpoint(run_dir)), load_dict=save_dict,
                         map_location=device).attach(trainer)
    ResumeSampler(sampler).attach(trainer)
    throughput = Throughput(config.batch_size * ctx.world_size, device)
    throughput.attach(trainer)  # first, so that its clock stops before the final checkpoint is written
    StopAtIteration(config.iterations).attach(trainer)
    StopAtWallTime(config.max_minutes * 60.0, start_time).attach(trainer)

    export_generator = ema if ema is not None else generator
    evaluator = None
    writer = None
    if ctx.is_main:
        writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        CheckpointSaver(str(run_dir), save_dict, save_final=True, final_filename="checkpoint_final.pt",
                        epoch_level=False, save_interval=config.checkpoint_interval, n_saved=2).attach(trainer)
        StatsHandler(name="PilletGAN.train", iteration_log=every(config.log_interval), output_transform=lambda out: out,
                     tag_name="loss").attach(trainer)
        TensorBoardStatsHandler(summary_writer=writer, iteration_log=config.log_interval,
                                output_transform=lambda out: out).attach(trainer)
        if val_records:
            val_ds = build_dataset(val_records, config.image_size, config.margin, cache_dir=config.cache_dir,
                                   num_workers=config.num_workers, progress=show,
                                   lung_fields=config.recipe.lung_gate, lung_margin=config.recipe.lung_margin)
            val_loader = DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, num_workers=0,
                                    collate_fn=list_data_collate)
            evaluator = LocalizationEvaluator(
                device, val_loader, export_generator, localizer, key_metric=config.best_metric, bf16=config.amp,
                val_handlers=[
                    StatsHandler(name="PilletGAN.val", iteration_log=False),
                    TensorBoardStatsHandler(summary_writer=writer, iteration_log=False,
                                            global_epoch_transform=lambda _: trainer.state.iteration),
                    CheckpointSaver(str(run_dir), {"generator": export_generator}, save_key_metric=True,
                                    key_metric_filename="best.pt"),
                ])
            ValidationHandler(interval=config.val_interval, validator=evaluator, epoch_level=False).attach(trainer)
            grid_items = [val_ds[i] for i in _grid_indices(val_records)]
            if grid_items:
                ImageGridHandler(writer, torch.stack([torch.as_tensor(g["image"]).as_subclass(torch.Tensor)
                                                      for g in grid_items]),
                                 lambda: export_generator, config.image_log_interval).attach(trainer)

    if ctx.world_size == 1:
        with StopOnInterrupt(trainer) as interrupt:
            trainer.run()
        if interrupt.requested:
            if writer is not None:
                writer.close()
            ctx.close()
            raise KeyboardInterrupt(f"stopped at iteration {trainer.state.iteration}; --resume continues from "
                                    "checkpoint_final.pt")
    else:  # every rank must stop at the same iteration: leave Ctrl-C to torchrun
        trainer.run()
    summary: dict[str, Any] = {"iterations": trainer.state.iteration, "rank": ctx.rank,
                               "world_size": ctx.world_size, "throughput": throughput.summary()}
    if ctx.is_main:
        data = {"manifest": str(Path(manifest).resolve()), "resumed": resume, "train_images": len(train_records),
                "train_disease": sum(r.is_disease for r in train_records),
                "train_localization_only": sum(r.localization_only for r in train_records),
                "validation_images": len(val_records)}
        summary.update(export_trained_model(trainer, config, evaluator, val_ds if val_records else None, val_records,
                               run_dir, data, device, ctx, start_time))
        writer.close()
    ctx.barrier()
    ctx.close()
    return summary


def _grid_indices(records: list[ManifestRecord], per_class: int = 2) -> list[int]:
    healthy = [i for i, r in enumerate(records) if not r.is_disease][:per_class]
    disease = [i for i, r in enumerate(records) if r.is_disease and len(r.boxes)][:per_class]
    return healthy + disease


def export_trained_model(trainer: PilletGANTrainer, config: TrainingConfig, evaluator: LocalizationEvaluator | None,
                         val_ds, val_records: list[ManifestRecord], run_dir: Path, data: dict[str, Any],
                         device: torch.device, ctx: DistributedContext,
                         start_time: float) -> dict[str, Any]:
    """Pick the EMA or the raw generator by the validation metric, calibrate on the healthy validation
    images and write ``model.pt`` + ``model.json`` + ``run.json``.

    Both candidates are scored by a copy of ``evaluator`` without its handlers, so the choice adds no
    TensorBoard points and never touches ``best.pt``.
    """
    candidates = {"ema": trainer.ema_generator, "generator": trainer.generator}
    candidates = {k: v for k, v in candidates.items() if v is not None}
    validation: dict[str, dict[str, float]] = {}
    chosen = "ema" if "ema" in candidates else "generator"
    if evaluator is not None:
        scorer = LocalizationEvaluator(evaluator.state.device, evaluator.data_loader, evaluator.generator,
                                       evaluator.localizer, key_metric=config.best_metric, bf16=config.amp)
        for name, network in candidates.items():
            scorer.generator = network
            scorer.run()
            validation[name] = {k: float(v) for k, v in scorer.state.metrics.items()}
        chosen = max(validation, key=lambda k: (validation[k].get(config.best_metric, 0.0), k == "ema"))
    network = candidates[chosen]
    calibration: dict[str, Any] = {}
    predictor = Predictor(network, _model_card(config, Localizer(config.recipe), {}), device=device,
                          batch_size=config.batch_size)
    healthy = [_prepared_from_item(val_ds[i]) for i, r in enumerate(val_records) if not r.is_disease] if val_ds else []
    if healthy:
        calibration = calibrate(predictor, healthy, config.calibration_percentile,
                                specificity=config.calibration_specificity)
    else:
        logger.warning("no healthy validation images: the mask threshold keeps its default %.3f and the model makes "
                       "no finding (no detection threshold)",
                       predictor.localizer.calibration.threshold)
    training = {"config": config.to_dict(), "iterations": trainer.state.iteration, "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                # wall time of this session: only the last part of a run when data["resumed"]
                "world_size": ctx.world_size, "wall_time_s": round(time.time() - start_time, 1),
                "batch_scaled": config.batch_scaled(ctx.world_size), "data": data, "exported": chosen, "validation": validation,
                "calibration": calibration}
    card = _model_card(config, predictor.localizer, training)
    save_model(network.state_dict(), card, run_dir / "model.pt")
    summary = {"model": str(run_dir / "model.pt"), "exported": chosen, "validation": validation,
               "calibration": calibration, "wall_time_s": training["wall_time_s"]}
    (run_dir / "run.json").write_text(json.dumps({**summary, "config": config.to_dict()}, indent=2) + "\n",
                                      encoding="utf-8")
    return summary
