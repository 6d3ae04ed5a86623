"""The healthy translator compiled by TorchInductor with frozen weights: the fastest CPU path with bf16."""

from __future__ import annotations

import logging
import time
import warnings

import torch
import torch.nn.functional as F

from ..networks.translator import HealthyTranslator

__all__ = ["CompiledTranslator"]

logger = logging.getLogger(__name__)


class CompiledTranslator:
    """:meth:`heal` of a :class:`HealthyTranslator` (in eval mode) through ``torch.compile``.

    Inductor's freezing folds the weights into the compiled graph as constants and prepacks them for the CPU's
    convolution kernels, which eager torch redoes on every call: the translator is a snapshot, like an ONNX export.
    Compilation happens on the first batch (5-20 s on a 2-core CPU). Batches smaller than ``batch_size`` are padded
    with zeros, so that one compiled graph serves a whole run (instance normalization keeps images independent).
    """

    def __init__(self, translator: HealthyTranslator, batch_size: int) -> None:
        self.translator = translator.eval()
        self.batch_size = max(1, int(batch_size))
        self._compiled = torch.compile(self.translator.heal, dynamic=False, options={"freezing": True})
        self._compiled_once = False

    def heal(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(healed, attention maps)`` of a ``(B, C, H, W)`` batch (run in chunks of ``batch_size``)."""
        healed, attention = [], []
        for chunk in x.split(self.batch_size):
            chunk_healed, chunk_attention = self._heal_padded(chunk)
            healed.append(chunk_healed)
            attention.append(chunk_attention)
        return torch.cat(healed), [torch.cat(maps) for maps in zip(*attention, strict=True)]

    def _heal_padded(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        count = x.shape[0]
        padded = F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.batch_size - count))
        if self._compiled_once:
            healed, attention = self._compiled(padded)
        else:
            clock = time.perf_counter()
            with warnings.catch_warnings():  # tracing warns about a cache inside torch itself: noise for a user
                warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")
                healed, attention = self._compiled(padded)
            self._compiled_once = True
            logger.info("compiled the network with TorchInductor in %.1f s (first batch)", time.perf_counter() - clock)
        return healed[:count].clone(), [a[:count].clone() for a in attention]
