"""Data-parallel training across processes started by ``torchrun`` (gloo on CPU, nccl on GPU).

Each rank trains on its own stream of balanced batches; after every backward pass the gradients
are averaged across ranks with ``all_reduce``, so the replicas stay identical (their initial
weights are broadcast from rank 0). This is what ``DistributedDataParallel`` does, done by hand
because a GAN iteration runs several forward passes per backward and a double backward for the
gradient penalty, which DDP's reducer does not support.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "average_gradients", "broadcast_parameters", "setup_distributed"]


@dataclass
class DistributedContext:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def setup_distributed(device_type: str = "cpu") -> DistributedContext:
    """Join the process group described by torchrun's environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        initialized_here = True
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    # ignite's handlers query the group lazily with a collective call; doing it here on every rank
    # keeps rank-0-only handlers (checkpoints, logging) from waiting for ranks that never ask
    import ignite.distributed as idist

    idist.sync()
    return DistributedContext(rank, world_size, local_rank, initialized_here)


def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Make every rank start from rank ``src``'s parameters and buffers."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src)


def average_gradients(module: torch.nn.Module) -> None:
    """Average the gradients of ``module`` across ranks (no-op in a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world_size = dist.get_world_size()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()
