"""On-disk cache of the ONNX exports the ``onnxruntime`` backend makes, so that a new process skips the export.

Exporting the translator costs about 1.4 s of CPU on a 2-core machine for the shipped model, in every process
(``pilletgan infer`` on one file, each ``pilletgan batch`` run, each torchrun rank). An export is kept under
:func:`cache_dir` in a file named ``<key>-<sha256 of the file>.onnx``:

- the key hashes everything the export depends on: the weights and buffers (names, shapes, dtypes, bytes), the
  module's structure (``repr``), the example's channels and size, the opset, this cache's format, and the torch and
  onnx versions; a network that differs in any of these never meets another's export;
- a file is used only when its bytes match the checksum in its name (a damaged file is ignored with a warning and
  replaced); files are written under a temporary name and renamed into place, so a reader never sees half a file.

The folder is ``$PILLETGAN_CACHE_DIR`` when set (an empty value turns the cache off), else the platform's user cache
folder (``~/.cache/pilletgan`` on Linux). A cache that cannot be read or written is skipped with one warning:
the export then happens in memory, as without a cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
from pathlib import Path

import platformdirs
import torch

from ..errors import OutputError
from ..outputs.atomic import atomic_path

__all__ = ["CACHE_ENV", "cache_dir", "export_key", "read_export", "write_export"]

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder; an empty value turns the cache off.
CACHE_ENV = "PILLETGAN_CACHE_DIR"

#: Version of what an export in the cache holds; a change of the export's inputs, outputs or options must bump it.
CACHE_FORMAT = 1

_SUBFOLDER = "onnx"


def cache_dir() -> Path | None:
    """The folder that keeps exports, or ``None`` when ``$PILLETGAN_CACHE_DIR`` is set to an empty value."""
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return Path(platformdirs.user_cache_dir("pilletgan")) / _SUBFOLDER
    return Path(value) / _SUBFOLDER if value.strip() else None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def export_key(module: torch.nn.Module, example: torch.Tensor, opset: int) -> str:
    """A hexadecimal digest of what ``module``'s ONNX export on ``example`` (``1 x C x H x W``) depends on."""
    digest = hashlib.sha256()
    for part in (f"format {CACHE_FORMAT}", f"torch {torch.__version__}", f"onnx {_version('onnx')}",
                 f"opset {opset}", f"example {tuple(example.shape[1:])} {example.dtype}", repr(module)):
        digest.update(part.encode() + b"\0")
    for name, tensor in module.state_dict().items():
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_export(folder: Path, key: str) -> bytes | None:
    """The cached export of ``key`` whose bytes match the checksum in its name, or ``None``."""
    try:
        candidates = sorted(folder.glob(f"{key}-*.onnx"))
    except OSError as err:
        logger.warning("the ONNX cache %s cannot be read (%s); exporting instead", folder, err)
        return None
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError as err:
            logger.warning("the cached ONNX export %s cannot be read (%s); exporting instead", path, err)
            continue
        if hashlib.sha256(data).hexdigest() == path.stem.removeprefix(f"{key}-"):
            return data
        logger.warning("the cached ONNX export %s does not match its checksum (damaged); it is ignored and "
                       "replaced", path)
    return None


def write_export(folder: Path, key: str, data: bytes) -> Path | None:
    """Keep ``data`` as the export of ``key`` (replacing damaged files of that key); ``None`` if it cannot be written."""
    path = folder / f"{key}-{hashlib.sha256(data).hexdigest()}.onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{key}-*.onnx"):
            if stale != path:
                stale.unlink(missing_ok=True)
        with atomic_path(path) as temporary:
            temporary.write_bytes(data)
    except (OSError, OutputError) as err:
        logger.warning("the ONNX export cannot be kept in the cache %s (%s); the next process exports again (set "
                       "%s to a writable folder, or to an empty value to turn the cache off)", folder, err, CACHE_ENV)
        return None
    return path
