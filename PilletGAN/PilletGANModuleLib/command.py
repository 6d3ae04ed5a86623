"""The ``pilletgan infer`` command line the Slicer module runs, and the environment it runs in."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .library import LIBRARY_PACKAGE

__all__ = ["DEVICES", "build_infer_command", "cli_prefix", "model_argument", "subprocess_environment"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def model_argument(model_path: str | os.PathLike | None) -> str | None:
    """The ``--model`` value for a model path chosen in the panel; ``None`` (use the shipped model) when empty.

    Raises:
        FileNotFoundError: a path is given but no such file exists.
    """
    text = os.fspath(model_path).strip() if model_path is not None else ""
    if text in ("", "."):
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return str(path.resolve())


def cli_prefix(python_executable: str, console_script: str | None = None) -> list[str]:
    """How to start the CLI: ``python -m PilletGANLib.cli``, or the ``pilletgan`` console script when given
    (run by ``python_executable`` unless it is a Windows ``.exe`` launcher)."""
    if console_script is None:
        return [python_executable, "-m", f"{LIBRARY_PACKAGE}.cli"]
    if console_script.lower().endswith(".exe"):
        return [console_script]
    return [python_executable, console_script]


def build_infer_command(prefix: Sequence[str], input_path: str | os.PathLike, output_dir: str | os.PathLike,
                        model_path: str | None = None, device: str = "auto") -> list[str]:
    """``<prefix> infer INPUT --out DIR [--model PATH] [--device D]`` as an argument list (never a shell string).

    Args:
        prefix: from :func:`cli_prefix`.
        input_path: the radiograph file (temporary NRRD export or the source DICOM file).
        output_dir: folder for the result files.
        model_path: from :func:`model_argument`; ``None`` uses the shipped default model.
        device: ``auto`` (the CLI's default, not passed), ``cpu``, ``cuda`` or ``mps``.
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    command = [*prefix, "infer", os.fspath(input_path), "--out", os.fspath(output_dir)]
    if model_path:
        command += ["--model", model_path]
    if device != "auto":
        command += ["--device", device]
    return command


def subprocess_environment(library_root: str | os.PathLike | None, inherited_pythonpath: str | None = None
                           ) -> dict[str, str]:
    """Variables to set for the CLI process: the library on ``PYTHONPATH`` first, unbuffered UTF-8 output."""
    environment = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    paths = [os.fspath(library_root)] if library_root else []
    if inherited_pythonpath:
        paths.append(inherited_pythonpath)
    if paths:
        environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment
