"""What runs the Predictor's network: eager torch, ONNX Runtime or TorchInductor, and which one ``auto`` picks."""

from __future__ import annotations

import importlib.util
import logging

import torch

__all__ = ["BACKENDS", "native_bf16", "onnxruntime_available", "resolve_backend"]

logger = logging.getLogger(__name__)

#: Network backends of a :class:`~PilletGANLib.inference.Predictor`.
BACKENDS = ("auto", "torch", "onnxruntime", "inductor")


def onnxruntime_available() -> bool:
    """Whether the ``onnxruntime`` package is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (a CUDA GPU, or a CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_backend(backend: str, device: torch.device, bf16: bool) -> str:
    """``auto``: ONNX Runtime on the CPU in float32 when installed (the faster exact path), else torch.

    ``inductor`` (``torch.compile`` with frozen weights) is never picked by ``auto``: it compiles for seconds before
    the first batch, which pays only over many images. bf16 where the device emulates it is allowed, with a warning.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got '{backend}'")
    if bf16 and not native_bf16(device):
        logger.warning("bf16 on %s is emulated (no AVX512-BF16 or AMX on this CPU): expect it to be many times "
                       "slower than float32; leave bf16 off here", device)
    if backend == "auto":
        return "onnxruntime" if device.type == "cpu" and not bf16 and onnxruntime_available() else "torch"
    if backend == "onnxruntime" and (device.type != "cpu" or bf16):
        raise ValueError("backend 'onnxruntime' runs on the CPU in float32: use device 'cpu' without bf16")
    return backend
