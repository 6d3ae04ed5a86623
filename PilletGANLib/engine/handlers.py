"""Ignite handlers of a PILLET-GAN run: stopping at an iteration count or a wall time, resumable sampling,
image grids."""

from __future__ import annotations

import logging
import resource
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from torch.utils.tensorboard import SummaryWriter

from .sampling import BalancedBatchSampler

__all__ = ["ImageGridHandler", "ResumeSampler", "StopAtIteration", "StopAtWallTime", "StopOnInterrupt", "Throughput", "every",
           "image_grid"]

logger = logging.getLogger("PilletGAN.train")


def every(interval: int) -> Callable[[Engine, int], bool]:
    """An event filter that fires on every ``interval``-th event (MONAI's ``StatsHandler`` takes no interval)."""
    return lambda engine, event: event % interval == 0


class StopAtIteration:
    """Terminate the run when ``engine.state.iteration`` reaches ``iterations`` (the run's total)."""

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.STARTED, self._check_done)

    def _check_done(self, engine: Engine) -> None:
        if engine.state.iteration >= self.iterations:
            engine.terminate()

    def __call__(self, engine: Engine) -> None:
        if engine.state.iteration >= self.iterations:
            engine.terminate()


class StopAtWallTime:
    """Terminate the run once ``seconds`` have passed since ``start_time`` (a ``time.time()`` value; the
    engine's start when None). ``seconds == 0`` means no limit.

    Used to give two runs the same time budget. Under torchrun every rank stops at the same iteration:
    rank 0's clock decides and is broadcast.
    """

    def __init__(self, seconds: float, start_time: float | None = None) -> None:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0 (0: no limit), got {seconds}")
        self.seconds, self.start_time = seconds, start_time

    def attach(self, engine: Engine) -> None:
        if not self.seconds:
            return
        if self.start_time is None:
            engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _start(self, engine: Engine) -> None:
        self.start_time = time.time()

    def __call__(self, engine: Engine) -> None:
        expired = torch.tensor([float(time.time() - self.start_time >= self.seconds)])
        if dist.is_available() and dist.is_initialized():
            if dist.get_backend() == "nccl":
                expired = expired.cuda()
            dist.broadcast(expired, src=0)
        if float(expired) > 0:
            logger.info("wall-time budget of %.0f s reached at iteration %d", self.seconds, engine.state.iteration)
            engine.terminate()


class StopOnInterrupt:
    """While active (a context manager around ``engine.run()``), the first Ctrl-C (SIGINT) asks the engine to stop
    after the current iteration, so the run ends through ``Events.COMPLETED`` (the final checkpoint is saved
    there) and ``requested`` is set; a second Ctrl-C interrupts at once.

    A ``KeyboardInterrupt`` raised inside a finalizer or a C callback is printed and dropped by Python, which left a
    run going after Ctrl-C; setting a flag cannot be dropped. Does nothing outside the main thread.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.requested = False
        self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.info("interrupted: stopping after iteration %d (Ctrl-C again to stop at once)",
                    self.engine.state.iteration)
        self.engine.terminate()

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class Throughput:
    """Training images/s of a run, from the end of its ``warmup``-th iteration to its last (every handler
    included), and its peak memory: the device allocator's peak on CUDA, the process's peak resident set
    elsewhere. The device is synchronized twice, at the two ends, never per iteration.
    """

    #: iterations left out of the timing by default (allocator warm-up, autotuning, compilation of the first shapes)
    WARMUP = 5

    def __init__(self, images_per_iteration: int, device: torch.device | str, warmup: int = WARMUP) -> None:
        self.images_per_iteration, self.device, self.warmup = images_per_iteration, torch.device(device), warmup
        self.first_iteration = 0
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _clock(self, engine: Engine) -> tuple[float, int]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter(), engine.state.iteration

    def _started(self, engine: Engine) -> None:
        self.first_iteration, self.start, self.end = engine.state.iteration, None, None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _iteration(self, engine: Engine) -> None:
        if engine.state.iteration == self.first_iteration + self.warmup:
            self.start = self._clock(engine)

    def _completed(self, engine: Engine) -> None:
        self.end = self._clock(engine)

    def summary(self) -> dict[str, float | int | None]:
        """``images_per_s`` (None when the run had no iteration past the warm-up), ``timed_iterations``,
        ``seconds`` and ``peak_memory_mb``."""
        timed = seconds = 0
        if self.start is not None and self.end is not None:
            timed, seconds = self.end[1] - self.start[1], self.end[0] - self.start[0]
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"images_per_s": round(timed * self.images_per_iteration / seconds, 3) if timed and seconds > 0
                else None, "timed_iterations": timed, "seconds": round(seconds, 3), "peak_memory_mb": round(peak, 1)}


class ResumeSampler:
    """Point the balanced sampler at the engine's iteration when a run starts (after a checkpoint load)."""

    def __init__(self, sampler: BalancedBatchSampler) -> None:
        self.sampler = sampler

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.sampler.start_iteration = engine.state.iteration


def image_grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """Stack rows of ``(B, 1, H, W)`` maps (each scaled to [0, 1]) into one ``(1, rows*H, B*W)`` image."""
    lines = []
    for row in rows:
        row = row.detach().float().cpu()
        lines.append(torch.cat(list(row[:, 0]), dim=1))
    return torch.cat(lines, dim=0)[None].clamp(0, 1)


class ImageGridHandler:
    """Every ``interval`` iterations, log input / healed / difference / attention of fixed images.

    The grid's rows: the inputs, their translation to Healthy, ``|difference|`` (scaled so 1.0 is
    white) and each attention map, for a fixed set of validation images (healthy and disease).
    """

    def __init__(self, writer: SummaryWriter, images: torch.Tensor, generator_fn, interval: int,
                 healthy_index: int = 0, tag: str = "images/input_healed_difference_attention") -> None:
        self.writer, self.images, self.generator_fn = writer, images, generator_fn
        self.interval, self.healthy_index, self.tag = interval, healthy_index, tag

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    @torch.no_grad()
    def __call__(self, engine: Engine) -> None:
        generator = self.generator_fn()
        was_training = generator.training
        generator.eval()
        device = next(generator.parameters()).device
        images = self.images.to(device)
        target = torch.full((images.shape[0],), self.healthy_index, dtype=torch.long, device=device)
        healed, attention = generator(images, target)
        generator.train(was_training)
        size = images.shape[-2:]
        rows = [(images + 1) / 2, (healed.float() + 1) / 2, (healed.float() - images).abs()]
        rows += [torch.nn.functional.interpolate(a.float(), size=size, mode="bilinear", align_corners=False)
                 for a in attention]
        self.writer.add_image(self.tag, image_grid(rows), engine.state.iteration)
        self.writer.flush()
