"""Where the module finds ``PilletGANLib``, and the one part of it the panel imports in Slicer's own Python.

The panel re-thresholds the heat map without rerunning the model, with the library's own mask rule
(:mod:`PilletGANLib.postprocess`, numpy and scipy only: no torch or MONAI in Slicer's process). The library
is importable from Slicer's Python when it was installed there, or sits in the module's folder (the built
extension: CMake copies it next to ``PilletGAN.py``) or beside that folder (a source checkout).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["LIBRARY_PACKAGE", "find_library_root", "library_postprocess"]

LIBRARY_PACKAGE = "PilletGANLib"


def find_library_root(module_dir: str | os.PathLike) -> Path | None:
    """The folder that holds the ``PilletGANLib`` package: the module's own folder in an installed extension
    (CMake copies the library next to ``PilletGAN.py``), or its parent in a source checkout. ``None`` if neither."""
    module_dir = Path(module_dir).resolve()
    for candidate in (module_dir, module_dir.parent):
        if (candidate / LIBRARY_PACKAGE / "__init__.py").is_file():
            return candidate
    return None


def library_postprocess(module_dir: str | os.PathLike) -> ModuleType:
    """:mod:`PilletGANLib.postprocess`, imported from Slicer's packages or else from the library folder found by
    :func:`find_library_root` (appended to ``sys.path``).

    Raises:
        ImportError: the library is in neither place.
    """
    if importlib.util.find_spec(LIBRARY_PACKAGE) is None:
        root = find_library_root(module_dir)
        if root is None:
            raise ImportError(f"{LIBRARY_PACKAGE} was found neither in Slicer's Python nor next to the module in "
                              f"{module_dir}; build the extension with CMake or install PilletGANLib into Slicer")
        sys.path.append(str(root))
    return importlib.import_module(f"{LIBRARY_PACKAGE}.postprocess")
