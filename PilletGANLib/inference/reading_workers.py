"""Files read and preprocessed in DataLoader worker processes, handed to the model in batches, in input order.

Three things keep the model, which runs in the main process, from waiting on the readers:

- each file is its own work item, spread over the workers, so a batch is ready when each worker has read its
  share of it rather than when one worker has read all of it;
- the image travels as a tensor, which DataLoader hands over in shared memory, not pickled through a pipe (a
  1955 x 1841 radiograph is 14 MB of float32, 0.9 MB as read for a 128 px network,
  :mod:`PilletGANLib.transforms.working_grid`), and only for a caller that reads it (``source_images``:
  the batch front door draws no overlay by default, so its workers do not send the image back, and a result that is
  asked for it reads the file again); the small network input is pickled, which costs less than a shared-memory
  handle's handshake;
- the workers run at a lower scheduling priority (:data:`WORKER_NICENESS`), so on a machine with few cores the
  network's threads are not preempted by decoding: the readers take the time the model leaves idle.

The workers never collect what they inherit: they are forked with the parent's objects frozen out of the garbage
collector's reach (``gc.freeze``). A worker that destroyed an abandoned ONNX Runtime session (an earlier
predictor's, waiting for a collection) would wait forever on its thread pool's condition variables, whose threads a
fork does not copy, and the run would hang.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import PilletGANError
from ..reading import load_cxr
from ..transforms.geometry import CXRGeometry
from ..transforms.pipeline import PreparedImage, prepare_image, source_grid_image

__all__ = ["WORKER_NICENESS", "Outcome", "prepared_batches"]

#: How much lower than the main process the reading workers are scheduled (``os.nice``; POSIX only).
WORKER_NICENESS = 10

#: One file's outcome: prepared for the network, or the reader's error naming the file.
Outcome = tuple[Path, PreparedImage | PilletGANError]


@dataclass
class _Shared:
    """A :class:`PreparedImage` on the trip out of a worker: the image as read (at reduced resolution where it was
    read so) as a tensor (``None`` where it stays behind), the network input as an array."""

    image: torch.Tensor | None
    meta: dict[str, Any]
    network_input: np.ndarray
    geometry: CXRGeometry

    def prepared(self, copy: bool, source_image: Callable[[], np.ndarray]) -> PreparedImage:
        """Back as a :class:`PreparedImage`; ``copy`` takes the image out of shared memory, so no file descriptor
        stays open per result kept; an image left behind is ``source_image``, which reads it again."""
        image: np.ndarray | Callable[[], np.ndarray] = source_image
        if self.image is not None:
            image = source_grid_image(self.image.numpy().copy() if copy else self.image.numpy(), self.meta)
        return PreparedImage(image, self.meta, torch.from_numpy(self.network_input), self.geometry)


def _read_source_image(path: Path, network_size: int | None) -> np.ndarray:
    """The source-grid image of ``path`` as the worker read it."""
    image = source_grid_image(*load_cxr(path, network_size))
    return image() if callable(image) else image


class _PathDataset(Dataset):
    """Reads and prepares one file per item; a reader's failure travels as the error object."""

    def __init__(self, paths: Sequence[Path], size: int, margin: float, network_size: int | None,
                 keep_image: bool = True) -> None:
        self.paths, self.size, self.margin, self.network_size = list(paths), size, margin, network_size
        self.keep_image = keep_image

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Path, _Shared | PilletGANError]:
        path = self.paths[index]
        try:
            image, meta = load_cxr(path, self.network_size)
            prepared = prepare_image(image, meta, self.size, self.margin)
        except PilletGANError as err:
            return path, err
        shared = torch.from_numpy(image) if self.keep_image else None
        return path, _Shared(shared, prepared.meta, prepared.network_input.numpy(), prepared.geometry)


def _as_is(item: Any) -> Any:
    return item


def _lower_priority(_: int) -> None:
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)


def _started(loader: DataLoader) -> Iterator[Any]:
    """``iter(loader)``, its worker processes forked with the parent's objects frozen out of the collector's reach
    (they stay collectable here once started)."""
    gc.freeze()
    try:
        return iter(loader)
    finally:
        gc.unfreeze()


def prepared_batches(paths: Sequence[Path], size: int, margin: float, batch_size: int, num_workers: int,
                     reduced_resolution: bool = True, source_images: bool = True) -> Iterator[list[Outcome]]:
    """Lists of up to ``batch_size`` outcomes, in the order of ``paths``.

    Args:
        paths: the files to read.
        size, margin: the network grid side and the intensity margin of :func:`prepare_image`.
        batch_size: outcomes per list (failures count).
        num_workers: reading processes; 0 reads in this process.
        reduced_resolution: read DICOM images at least 4 times ``size`` at reduced resolution
            (:mod:`PilletGANLib.dicom.reduced_resolution`).
        source_images: bring each source-grid image back from the workers; ``False`` leaves it there, and the
            prepared image's ``image`` is a function that reads the file again (for a caller that reads no image).
    """
    network_size = size if reduced_resolution else None
    dataset = _PathDataset(paths, size, margin, network_size, keep_image=source_images or not num_workers)
    workers = {"prefetch_factor": max(2, batch_size), "worker_init_fn": _lower_priority} if num_workers else {}
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_as_is, **workers)
    batch: list[Outcome] = []
    for path, outcome in _started(loader):
        if isinstance(outcome, _Shared):
            outcome = outcome.prepared(num_workers > 0, partial(_read_source_image, path, network_size))
        batch.append((path, outcome))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
