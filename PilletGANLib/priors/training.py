"""Training the lung-field regressor (:class:`~PilletGANLib.priors.LungFieldNet`) on lung-field boxes."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import DataError
from ..model_store import save_model
from ..reading import load_cxr
from ..transforms.pipeline import prepare_image
from .lung_fields import LUNG_FIELD_INPUT_SIZE, LungFieldNet

__all__ = ["LungFieldRecord", "LungFieldTrainingConfig", "box_iou", "lung_field_tensors", "save_lung_field_model",
           "train_lung_field_net"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LungFieldRecord:
    """One image with its lung-field box ``x1, y1, x2, y2`` in the image's pixels and its fold."""

    image: Path
    box: tuple[float, float, float, float]
    fold: int


@dataclass
class LungFieldTrainingConfig:
    """Settings of :func:`train_lung_field_net` (the shipped model used these defaults).

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step (the training set must hold at least one batch).
        learning_rate: peak learning rate of AdamW's one-cycle schedule.
        weight_decay: AdamW's weight decay.
        margin: intensity margin of the images' preprocessing, as the GAN's (``margin`` of training).
        seed: seed of the initialization, the batch order and the augmentation.
    """

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    margin: float = 0.9
    seed: int = 0


def lung_field_tensors(records: Sequence[LungFieldRecord], margin: float, progress: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (B, 1, S, S), boxes (B, 4))``: each image prepared as for inference at the regressor's input
    size, its box mapped to that grid as fractions of the side."""
    from tqdm import tqdm

    images, boxes = [], []
    for record in tqdm(records, desc="lung-field images", disable=not progress):
        image, meta = load_cxr(record.image)
        prepared = prepare_image(image, meta, LUNG_FIELD_INPUT_SIZE, margin)
        images.append(prepared.network_input)
        boxes.append(prepared.geometry.boxes_to_network(np.asarray([record.box]))[0] / LUNG_FIELD_INPUT_SIZE)
    return torch.stack(images).float(), torch.as_tensor(np.asarray(boxes), dtype=torch.float32)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of matching rows of two ``(B, 4)`` ``x1, y1, x2, y2`` box tensors."""
    width = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp_min(0)
    height = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp_min(0)
    inter = width * height

    def area(box: torch.Tensor) -> torch.Tensor:
        return (box[:, 2] - box[:, 0]).clamp_min(0) * (box[:, 3] - box[:, 1]).clamp_min(0)

    return inter / (area(a) + area(b) - inter).clamp_min(1e-8)


def _augment(images: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random left-right mirror (boxes mirrored with it) and random contrast and brightness."""
    count = images.shape[0]
    flip = torch.rand(count, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    mirrored = torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)
    boxes = torch.where(flip[:, None], mirrored, boxes)
    gain = 1 + 0.1 * torch.randn(count, 1, 1, 1, generator=generator)
    shift = 0.1 * torch.randn(count, 1, 1, 1, generator=generator)
    return images * gain + shift, boxes


def train_lung_field_net(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                         config: LungFieldTrainingConfig | None = None
                         ) -> tuple[LungFieldNet, list[dict[str, float]]]:
    """Fit a :class:`LungFieldNet` to ``(images, boxes)`` pairs (from :func:`lung_field_tensors`).

    Loss: smooth L1 on the box fractions plus ``1 - IoU``; AdamW with a one-cycle schedule. Returns the
    network after the last epoch and one record per epoch (loss, validation IoU mean / median / 10th
    percentile), each also logged.
    """
    config = config or LungFieldTrainingConfig()
    images, boxes = train
    if images.shape[0] < config.batch_size:
        raise DataError(f"lung-field training needs at least one batch ({config.batch_size} images), "
                        f"got {images.shape[0]}")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    net = LungFieldNet()
    optimizer = torch.optim.AdamW(net.parameters(), config.learning_rate, weight_decay=config.weight_decay)
    steps = images.shape[0] // config.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=config.epochs * steps)
    history = []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(images.shape[0], generator=generator)
        losses = []
        for step in range(steps):
            batch = order[step * config.batch_size:(step + 1) * config.batch_size]
            x, target = _augment(images[batch], boxes[batch], generator)
            predicted = net(x)
            loss = F.smooth_l1_loss(predicted, target, beta=0.02) + (1 - box_iou(predicted, target)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        net.eval()
        with torch.no_grad():
            iou = box_iou(net(val[0]), val[1])
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_iou_mean": float(iou.mean()),
                  "val_iou_median": float(iou.median()), "val_iou_p10": float(iou.quantile(0.1)),
                  "seconds": time.perf_counter() - start}
        history.append(record)
        logger.info("lung fields epoch %d/%d: loss %.4f, validation IoU mean %.3f (10th percentile %.3f)",
                    epoch + 1, config.epochs, record["loss"], record["val_iou_mean"], record["val_iou_p10"])
    return net, history


def save_lung_field_model(net: LungFieldNet, path: str | os.PathLike, config: LungFieldTrainingConfig,
                          history: Sequence[dict[str, float]], data: dict[str, Any]) -> Path:
    """Write the weights and their card (network, training settings, data, per-epoch history, SHA-256)."""
    card = {"name": "PilletGAN lung fields", "kind": "lung-field-box-regressor",
            "network": dict(net.config),
            "input_size": LUNG_FIELD_INPUT_SIZE, "output": "x1, y1, x2, y2 as fractions of the network grid",
            "training": {"config": asdict(config), "data": data, "history": list(history)}}
    return save_model(net.state_dict(), card, path)
