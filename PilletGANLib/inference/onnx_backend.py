"""The healthy translator run by ONNX Runtime on the CPU: the same network, exported once, faster than eager torch."""

from __future__ import annotations

import io
import logging
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import nn

from ..networks.export import ONNX_OPSET, exporting
from ..networks.translator import HealthyTranslator
from .onnx_cache import cache_dir, export_key, read_export, write_export

__all__ = ["OnnxTranslator"]

logger = logging.getLogger(__name__)


class _HealOutputs(nn.Module):
    """``x -> (healed, *attention maps)``: :meth:`HealthyTranslator.heal` with a flat tuple of outputs."""

    def __init__(self, translator: HealthyTranslator) -> None:
        super().__init__()
        self.translator = translator

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        healed, attention = self.translator.heal(x)
        return (healed, *attention)


class OnnxTranslator:
    """:meth:`heal` of a :class:`HealthyTranslator` (in eval mode, float32) through an ONNX Runtime session.

    The translator is exported once (dynamic batch and image size, so one export serves every call) and kept in the
    on-disk cache (:mod:`~PilletGANLib.inference.onnx_cache`), from which a later process with the same network
    takes it instead of exporting again; the session uses ``torch.get_num_threads()`` threads at that moment.
    :meth:`start_export` starts this in a background thread (an export takes about 1.4 s on a 2-core CPU, a cached
    one 0.02 s) so that it overlaps what comes before the first batch (finding and reading files); else it runs
    when the first batch arrives. An export error is raised by the first :meth:`heal`.
    """

    def __init__(self, translator: HealthyTranslator) -> None:
        self.translator = translator
        self.session = None
        self._export_done: Future | None = None

    def start_export(self, image_size: int) -> None:
        """Export in a background thread on an ``image_size`` example, unless exported or under way already."""
        if self.session is not None or self._export_done is not None:
            return
        example = torch.zeros(1, self.translator.in_channels, image_size, image_size)
        exporter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pilletgan-onnx-export")
        self._export_done = exporter.submit(self._export, example)
        exporter.shutdown(wait=False)  # the thread ends with the export

    def _export(self, example: torch.Tensor) -> None:
        import onnxruntime

        example = example[:1]
        module = _HealOutputs(self.translator.eval())
        folder = cache_dir()
        key = export_key(module, example, ONNX_OPSET) if folder is not None else ""
        model = read_export(folder, key) if folder is not None else None
        if model is None:
            model = self._exported(module, example)
            if folder is not None:
                write_export(folder, key, model)
        else:
            logger.info("ONNX Runtime runs the export cached in %s", folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # threads wait without spinning between operators: spinning takes the cores the file readers need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    @staticmethod
    def _exported(module: _HealOutputs, example: torch.Tensor) -> bytes:
        """``module`` exported on ``example`` (dynamic batch, height and width), as ONNX bytes."""
        with torch.no_grad():
            outputs = len(module(example))
        names = ["healed"] + [f"attention{i}" for i in range(outputs - 1)]
        dynamic = {0: "batch", 2: "height", 3: "width"}
        buffer = io.BytesIO()
        with torch.no_grad(), exporting():
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["image"], output_names=names,
                              dynamic_axes={name: dynamic for name in ["image", *names]})
        return buffer.getvalue()

    def heal(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(healed, attention maps)`` of a ``(B, C, H, W)`` float32 CPU batch."""
        x = x.detach().float().cpu().contiguous()
        if self._export_done is not None:
            done, self._export_done = self._export_done, None
            done.result()
        if self.session is None:
            self._export(x)
        healed, *attention = (torch.from_numpy(out) for out in self.session.run(None, {"image": x.numpy()}))
        return healed, attention
