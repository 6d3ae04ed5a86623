"""Files read and preprocessed in DataLoader worker processes, handed to the model in batches, in input order.

Three things keep the model, which runs in the main process, from waiting on the readers:

- each file is its own work item, spread over the workers, so a batch is ready when each worker has read its
  share of it rather than when one worker has read all of it;
- the source-grid image travels as a tensor, which DataLoader hands over in shared memory, not pickled through a
  pipe (a 1955 x 1841 radiograph is 14 MB of float32);
- the workers run at a lower scheduling priority (:data:`WORKER_NICENESS`), so on a machine with few cores the
  network's threads are not preempted by decoding: the readers take the time the model leaves idle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import PilletGANError
from ..reading import load_cxr
from ..transforms.geometry import CXRGeometry
from ..transforms.pipeline import PreparedImage, prepare_image

__all__ = ["WORKER_NICENESS", "Outcome", "prepared_batches"]

#: How much lower than the main process the reading workers are scheduled (``os.nice``; POSIX only).
WORKER_NICENESS = 10

#: One file's outcome: prepared for the network, or the reader's error naming the file.
Outcome = tuple[Path, PreparedImage | PilletGANError]


@dataclass
class _Shared:
    """A :class:`PreparedImage` with its source-grid image as a tensor, for the trip out of a worker."""

    image: torch.Tensor
    meta: dict[str, Any]
    network_input: torch.Tensor
    geometry: CXRGeometry

    def prepared(self, copy: bool) -> PreparedImage:
        """Back as arrays; ``copy`` takes them out of shared memory, so no file descriptor stays open per result
        kept."""
        if copy:
            return PreparedImage(self.image.numpy().copy(), self.meta, self.network_input.clone(), self.geometry)
        return PreparedImage(self.image.numpy(), self.meta, self.network_input, self.geometry)


class _PathDataset(Dataset):
    """Reads and prepares one file per item; a reader's failure travels as the error object."""

    def __init__(self, paths: Sequence[Path], size: int, margin: float, network_size: int | None) -> None:
        self.paths, self.size, self.margin, self.network_size = list(paths), size, margin, network_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Path, _Shared | PilletGANError]:
        path = self.paths[index]
        try:
            prepared = prepare_image(*load_cxr(path, self.network_size), self.size, self.margin)
        except PilletGANError as err:
            return path, err
        return path, _Shared(torch.from_numpy(prepared.image), prepared.meta, prepared.network_input,
                             prepared.geometry)


def _as_is(item: Any) -> Any:
    return item


def _lower_priority(_: int) -> None:
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)


def prepared_batches(paths: Sequence[Path], size: int, margin: float, batch_size: int, num_workers: int,
                     half_resolution: bool = True) -> Iterator[list[Outcome]]:
    """Lists of up to ``batch_size`` outcomes, in the order of ``paths``.

    Args:
        paths: the files to read.
        size, margin: the network grid side and the intensity margin of :func:`prepare_image`.
        batch_size: outcomes per list (failures count).
        num_workers: reading processes; 0 reads in this process.
        half_resolution: let JPEG 2000 images at least 4 times ``size`` decode at half resolution
            (:mod:`PilletGANLib.dicom.half_resolution`).
    """
    dataset = _PathDataset(paths, size, margin, size if half_resolution else None)
    workers = {"prefetch_factor": max(2, batch_size), "worker_init_fn": _lower_priority} if num_workers else {}
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_as_is, **workers)
    batch: list[Outcome] = []
    for path, outcome in loader:
        batch.append((path, outcome.prepared(copy=num_workers > 0) if isinstance(outcome, _Shared) else outcome))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
