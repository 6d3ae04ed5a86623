"""TorchScript and ONNX files of a :class:`~PilletGANLib.networks.HealthyTranslator` (``pilletgan model export``)."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import OutputError
from .translator import HealthyTranslator

__all__ = ["EXPORT_FORMATS", "ONNX_OPSET", "export_onnx", "export_torchscript"]

#: ONNX opset of exported translators.
ONNX_OPSET = 17
#: File formats ``pilletgan model export`` writes, by suffix.
EXPORT_FORMATS = {".onnx": "onnx", ".ts": "torchscript", ".pt": "torchscript"}

_EXPORT_LOCK = threading.RLock()


@contextmanager
def exporting() -> Iterator[None]:
    """Hold the process's export lock (the tracer and the ONNX exporter keep global state, so two exports must not
    overlap, e.g. a predictor's background export and another) and silence the warnings every export of this graph
    raises by design.

    The generator's input checks run in Python, so the tracer reports them as constants (the traced
    graph stays valid for any batch and any size that is a multiple of 4), and instance norm always
    normalizes with per-image statistics, which the ONNX exporter reports as ``train=True``.
    """
    with _EXPORT_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True.*")
        # the TorchScript-based exporter is chosen on purpose (see export_onnx)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message="The feature will be removed.*")
        yield


def _example_input(translator: HealthyTranslator, image_size: int, batch_size: int = 1) -> torch.Tensor:
    parameter = next(translator.parameters())
    return torch.zeros(batch_size, translator.in_channels, image_size, image_size, device=parameter.device,
                       dtype=parameter.dtype)


def _replace_into(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write with ``write(temporary_path)`` next to ``path``, then rename it to ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write the exported model: the folder {path.parent} does not exist", path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as err:
        raise OutputError(f"cannot write the exported model: {err}", path) from err
    finally:
        temporary.unlink(missing_ok=True)
    return path


def export_torchscript(translator: HealthyTranslator, path: str | os.PathLike, image_size: int = 256) -> Path:
    """Trace ``translator`` (in eval mode) on an ``image_size`` example and save it as TorchScript at ``path``.

    The traced module takes any batch size and any square size that is a multiple of 4.
    """
    translator.eval()
    with torch.no_grad(), exporting():
        traced = torch.jit.trace(translator, _example_input(translator, image_size, batch_size=2))
    return _replace_into(path, lambda temporary: torch.jit.save(traced, str(temporary)))


def export_onnx(translator: HealthyTranslator, path: str | os.PathLike, image_size: int = 256,
                opset: int = ONNX_OPSET) -> Path:
    """Export ``translator`` (in eval mode) to ONNX at ``path``: input ``image`` ``(batch, C, height, width)``,
    output ``pred`` ``(batch, 2, height, width)`` (healed image, lesion map), dynamic batch and image size.

    Uses the TorchScript-based exporter (``dynamo=False``), which handles the generator's graph in one pass.
    """
    translator.eval()
    dynamic = {0: "batch", 2: "height", 3: "width"}

    def write(temporary: Path) -> None:
        with torch.no_grad(), exporting():
            torch.onnx.export(translator, (_example_input(translator, image_size),), str(temporary), dynamo=False,
                              opset_version=opset, input_names=["image"], output_names=["pred"],
                              dynamic_axes={"image": dynamic, "pred": dynamic})

    return _replace_into(path, write)
