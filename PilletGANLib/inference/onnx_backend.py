"""The healthy translator run by ONNX Runtime on the CPU: the same network, exported once, faster than eager torch."""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import nn

from ..networks.export import ONNX_OPSET, exporting
from ..networks.translator import HealthyTranslator

__all__ = ["OnnxTranslator"]


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

    The translator is exported in memory once (dynamic batch and image size, so one export serves every call);
    the session uses ``torch.get_num_threads()`` threads at that moment. :meth:`start_export` starts the export in
    a background thread (about 2 s on a 2-core CPU) so that it overlaps what comes before the first batch (finding
    and reading files); else it runs when the first batch arrives. An export error is raised by the first
    :meth:`heal`.
    """

    def __init__(self, translator: HealthyTranslator) -> None:
        self.translator = translator
        self.session = None
        self.num_outputs = 0
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

        module = _HealOutputs(self.translator.eval())
        with torch.no_grad():
            self.num_outputs = len(module(example[:1]))
        names = ["healed"] + [f"attention{i}" for i in range(self.num_outputs - 1)]
        dynamic = {0: "batch", 2: "height", 3: "width"}
        buffer = io.BytesIO()
        with torch.no_grad(), exporting():
            torch.onnx.export(module, (example[:1],), buffer, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["image"], output_names=names,
                              dynamic_axes={name: dynamic for name in ["image", *names]})
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

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
