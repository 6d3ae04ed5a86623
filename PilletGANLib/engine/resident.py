"""The training set resident on the training device: batches gathered there, no loader, no collation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from tqdm import tqdm

from .sampling import BalancedBatchSampler

__all__ = ["ResidentBatches", "ResidentTrainingSet"]


class ResidentTrainingSet:
    """Every preprocessed training image (and its cached ``lung`` mask, and with ``truth`` its lesion truth) held
    as one tensor on ``device``.

    Images are stored as ``dtype`` (float16 by default: 2 bytes a pixel, about 0.6 GB for 5,000 images at
    256 px; the intensities lie in ``[-margin, margin]``, where float16 keeps 3 significant digits) and
    masks as uint8. :meth:`batch` gathers the items of a list of indices with one indexing per tensor and
    returns them as float32, in the keys the trainer reads (``image``, ``label``, ``lung``; with ``truth``,
    ``lesion`` and ``has_truth``).

    Args:
        dataset: a sequence of preprocessed items (:func:`~PilletGANLib.data.datasets.build_dataset`).
        device: where the tensors live.
        dtype: storage type of the images (``torch.float32`` keeps them exact).
        progress: show a progress bar while the items are read.
        truth: also hold each item's ``lesion`` truth (uint8) and ``has_truth`` flag (box guidance).
    """

    def __init__(self, dataset: Sequence[dict[str, Any]], device: torch.device | str,
                 dtype: torch.dtype = torch.float16, progress: bool = False, truth: bool = False) -> None:
        images, labels, lungs, lesions, has_truth = [], [], [], [], []
        for index in tqdm(range(len(dataset)), desc="training set to the device", disable=not progress):
            item = dataset[index]
            images.append(torch.as_tensor(item["image"]).as_subclass(torch.Tensor).to(dtype))
            labels.append(int(item["label"]))
            if "lung" in item:
                lungs.append(torch.as_tensor(item["lung"]).as_subclass(torch.Tensor) >= 0.5)
            if truth:
                lesions.append(torch.as_tensor(item["lesion"]).as_subclass(torch.Tensor) >= 0.5)
                has_truth.append(bool(item["has_truth"]))
        self.device = torch.device(device)
        self.images = torch.stack(images).to(self.device)
        self.labels = torch.tensor(labels, dtype=torch.long, device=self.device)
        self.lungs = torch.stack(lungs).to(self.device, torch.uint8) if len(lungs) == len(images) else None
        self.lesions = torch.stack(lesions).to(self.device, torch.uint8) if truth else None
        self.has_truth = torch.tensor(has_truth, dtype=torch.bool, device=self.device) if truth else None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes the set occupies on the device."""
        tensors = [t for t in (self.images, self.labels, self.lungs, self.lesions, self.has_truth) if t is not None]
        return sum(t.numel() * t.element_size() for t in tensors)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """The items at ``indices``: ``image`` ``(B, 1, N, N)`` float32, ``label`` ``(B,)`` and, when cached,
        ``lung`` ``(B, 1, N, N)`` float32 in {0, 1}; with ``truth``, ``lesion`` (the same) and ``has_truth`` ``(B,)``."""
        index = torch.as_tensor(indices, dtype=torch.long)
        if self.device.type == "cuda":  # a copy from pageable memory would first wait for the queued iteration
            index = index.pin_memory()
        index = index.to(self.device, non_blocking=True)
        batch = {"image": self.images.index_select(0, index).float(), "label": self.labels.index_select(0, index)}
        if self.lungs is not None:
            batch["lung"] = self.lungs.index_select(0, index).float()
        if self.lesions is not None:
            batch["lesion"] = self.lesions.index_select(0, index).float()
            batch["has_truth"] = self.has_truth.index_select(0, index)
        return batch


class ResidentBatches:
    """An endless iterable of resident batches in the order of a :class:`BalancedBatchSampler` (so a resumed
    run, whose sampler is pointed at the resumed iteration, sees the batches an uninterrupted one saw)."""

    def __init__(self, data: ResidentTrainingSet, sampler: BalancedBatchSampler) -> None:
        self.data, self.sampler = data, sampler

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for indices in self.sampler:
            yield self.data.batch(indices)
