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
    """

    def __init__(self, labels: Sequence[int], batch_size: int, seed: int = 0, rank: int = 0) -> None:
        labels = np.asarray(labels)
        self.healthy = np.flatnonzero(labels == 0)
        self.disease = np.flatnonzero(labels == 1)
        if len(self.healthy) == 0 or len(self.disease) == 0:
            raise DataError(f"training needs both classes: {len(self.healthy)} healthy and {len(self.disease)} disease images")
        if batch_size % 2:
            raise DataError(f"batch_size must be even for balanced batches, got {batch_size}")
        self.half = batch_size // 2
        self.seed, self.rank = int(seed), int(rank)
        self.start_iteration = 0

    def batch(self, iteration: int) -> list[int]:
        """The indices of batch ``iteration``."""
        rng = np.random.default_rng([self.seed, self.rank, iteration])
        healthy = rng.choice(self.healthy, self.half, replace=len(self.healthy) < self.half)
        disease = rng.choice(self.disease, self.half, replace=len(self.disease) < self.half)
        return [int(i) for i in np.concatenate([healthy, disease])]

    def __iter__(self) -> Iterator[list[int]]:
        iteration = self.start_iteration
        while True:
            yield self.batch(iteration)
            iteration += 1
