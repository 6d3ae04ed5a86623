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

__all__ = ["LIBRARY_PACKAGE", "TERMINOLOGY_FILE", "find_library_root", "library_postprocess", "terminology_file"]

LIBRARY_PACKAGE = "PilletGANLib"
#: The lesion terminology context, inside the library package (PilletGANLib.outputs.terminology reads it too).
TERMINOLOGY_FILE = Path("outputs") / "PilletGAN.term.json"


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


def terminology_file(module_dir: str | os.PathLike) -> Path:
    """The library's ``PilletGAN.term.json``: from the installed package, else from the folder
    :func:`find_library_root` finds.

    Raises:
        FileNotFoundError: the library or the file is in neither place.
    """
    spec = importlib.util.find_spec(LIBRARY_PACKAGE)
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    library_root = find_library_root(module_dir)
    if library_root is not None:
        roots.append(library_root / LIBRARY_PACKAGE)
    for root in roots:
        if (root / TERMINOLOGY_FILE).is_file():
            return root / TERMINOLOGY_FILE
    raise FileNotFoundError(f"{LIBRARY_PACKAGE}/{TERMINOLOGY_FILE.as_posix()} was found neither in Slicer's Python nor "
                            f"next to the module in {module_dir}")
