"""Balanced, iteration-indexed batch sampling: exact resume and disjoint streams per rank."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import DataError

__all__ = ["BalancedBatchSampler"]


class BalancedBatchSampler(Sampler[list[int]]):
    """Endless batches of half healthy, half disease indices.

    Batch ``i`` depends only on ``(seed, rank, i)``, so a run resumed at iteration ``i`` (set
    ``start_iteration``) sees exactly the batches an uninterrupted run would have seen, and each
    distributed rank draws its own stream.

    Args:
        labels: 0 (healthy) or 1 (disease) per index.
        batch_size: indices per batch (even).
        seed, rank: the stream's seed and the distributed rank.
        focus: disease indices of which ``focus_share`` of each disease half is drawn (e.g. the one-sided
            images side guidance reaches); the rest of that half is drawn from all disease indices.
        focus_share: in [0, 1]; the focus slots are ``round(focus_share * batch_size / 2)``.
    """

    def __init__(self, labels: Sequence[int], batch_size: int, seed: int = 0, rank: int = 0,
                 focus: Sequence[int] = (), focus_share: float = 0.0) -> None:
        labels = np.asarray(labels)
        self.healthy = np.flatnonzero(labels == 0)
        self.disease = np.flatnonzero(labels == 1)
        if len(self.healthy) == 0 or len(self.disease) == 0:
            raise DataError(f"training needs both classes: {len(self.healthy)} healthy and {len(self.disease)} disease images")
        if batch_size % 2:
            raise DataError(f"batch_size must be even for balanced batches, got {batch_size}")
        self.half = batch_size // 2
        self.focus = np.asarray(focus, dtype=np.int64)
        if not 0 <= focus_share <= 1:
            raise DataError(f"focus_share must be in [0, 1], got {focus_share}")
        if np.any(labels[self.focus] != 1):
            raise DataError("focus indices must be disease images")
        self.focus_slots = round(focus_share * self.half) if len(self.focus) else 0
        self.seed, self.rank = int(seed), int(rank)
        self.start_iteration = 0

    def batch(self, iteration: int) -> list[int]:
        """The indices of batch ``iteration``."""
        rng = np.random.default_rng([self.seed, self.rank, iteration])
        healthy = rng.choice(self.healthy, self.half, replace=len(self.healthy) < self.half)
        free = self.half - self.focus_slots
        disease = rng.choice(self.disease, free, replace=len(self.disease) < free)
        if self.focus_slots:
            focus = rng.choice(self.focus, self.focus_slots, replace=len(self.focus) < self.focus_slots)
            disease = np.concatenate([disease, focus])
        return [int(i) for i in np.concatenate([healthy, disease])]

    def __iter__(self) -> Iterator[list[int]]:
        iteration = self.start_iteration
        while True:
            yield self.batch(iteration)
            iteration += 1
