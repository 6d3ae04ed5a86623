"""Scale-out of a batch run under ``torchrun``: which rank does which instance, and how the parts come together.

Rank 0 checks the paths and discovers the export, then broadcasts the result, so every rank works on
the same list. The instances, sorted by Study, Series and SOP Instance UID, are dealt round-robin
(:func:`shard`); each rank writes its instances' outputs and its part of the summary
(``OUT/parts/rank-<r>.json``); after a barrier rank 0 merges the parts. The collectives run on a gloo
process group (CPU tensors, also on GPU nodes); with one process nothing is initialized. All ranks must
see the export and the output folder at the same paths (a shared file system across nodes).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..dicom import DicomInstance
from ..errors import ConfigurationError, OutputError
from ..outputs import atomic_path, json_ready

__all__ = ["PARTS_FOLDER", "RankGroup", "TorchrunEnvironment", "device_for_rank", "exchange_parts", "shard",
           "torchrun_environment"]

#: Folder of the per-rank parts inside the output folder; removed after the merge.
PARTS_FOLDER = "parts"
#: How long a rank waits for the others (rank 0's discovery, the slowest rank's share).
GROUP_TIMEOUT = datetime.timedelta(hours=12)

T = TypeVar("T")


@dataclass(frozen=True)
class TorchrunEnvironment:
    """This process's place in a ``torchrun`` job (``rank 0 of 1`` outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def torchrun_environment() -> TorchrunEnvironment:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them."""
    try:
        return TorchrunEnvironment(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                                   int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError as err:
        raise ConfigurationError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({err})") from err


def device_for_rank(device: str, local_rank: int) -> str:
    """``cuda:<local rank>`` for ``auto`` or ``cuda`` when CUDA is available, so each rank of a node gets its own GPU."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank}"
    return device


def shard(instances: Sequence[DicomInstance], rank: int, world_size: int) -> list[DicomInstance]:
    """Rank ``rank``'s share: every ``world_size``-th instance of the list sorted by Study, Series, SOP UID.

    The shares of ranks ``0 .. world_size - 1`` are disjoint and together hold every instance.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigurationError(f"rank {rank} is not within a world of {world_size} process(es)")
    ordered = sorted(instances, key=lambda i: (i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid))
    return ordered[rank::world_size]


class RankGroup:
    """The processes of one run; :meth:`broadcast` and :meth:`barrier` do nothing in a single process.

    With ``world_size > 1`` it joins torchrun's process group (gloo, initialized from the environment
    when nobody has; a gloo sub-group when the default group uses another backend) and leaves it on exit
    when it created it.
    """

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigurationError(f"rank {rank} is not within a world of {world_size} process(es)")
        self.rank, self.world_size = rank, world_size
        self._group: Any = None
        self._owns_default_group = False
        if world_size > 1:
            self._join()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _join(self) -> None:
        import torch.distributed as dist

        if not dist.is_available():
            raise ConfigurationError("this PyTorch build has no torch.distributed; run with one process")
        if not dist.is_initialized():
            if "MASTER_ADDR" not in os.environ:
                raise ConfigurationError(f"world size {self.world_size} needs the environment torchrun sets "
                                         "(MASTER_ADDR, MASTER_PORT); start the command with torchrun")
            dist.init_process_group("gloo", rank=self.rank, world_size=self.world_size, timeout=GROUP_TIMEOUT)
            self._owns_default_group = True
        if (dist.get_rank(), dist.get_world_size()) != (self.rank, self.world_size):
            raise ConfigurationError(f"rank {self.rank} of {self.world_size} does not match the process group "
                                     f"(rank {dist.get_rank()} of {dist.get_world_size()})")
        if dist.get_backend() != "gloo":
            self._group = dist.new_group(backend="gloo", timeout=GROUP_TIMEOUT)

    def broadcast(self, value: T, src: int = 0) -> T:
        """Rank ``src``'s ``value`` on every rank (pickled)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=src, group=self._group)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank has arrived."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier(group=self._group)

    def close(self) -> None:
        if self._owns_default_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owns_default_group = False

    def __enter__(self) -> RankGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _part_path(out_dir: Path, rank: int) -> Path:
    return out_dir / PARTS_FOLDER / f"rank-{rank:05d}.json"


def exchange_parts(group: RankGroup, out_dir: Path, part: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every rank's ``part`` (JSON-ready) on rank 0, ``None`` elsewhere.

    Each rank writes its part to ``OUT/parts/rank-<r>.json`` (atomically); after a barrier rank 0 reads
    them all and removes the folder. In a single process the part is returned as is.
    """
    if group.world_size == 1:
        return [part]
    path = _part_path(out_dir, group.rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(json_ready(part)), encoding="utf-8")
    group.barrier()
    if not group.is_main:
        return None
    parts = []
    for rank in range(group.world_size):
        try:
            parts.append(json.loads(_part_path(out_dir, rank).read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise OutputError(f"the part of rank {rank} cannot be read ({err}); is the output folder on a file "
                              "system every node shares?", _part_path(out_dir, rank)) from err
    shutil.rmtree(out_dir / PARTS_FOLDER, ignore_errors=True)
    return parts
