"""Write a file under a temporary name in its final folder and rename it into place when complete."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError

__all__ = ["atomic_path", "full_suffix"]

_COMPOUND_SUFFIXES = (".seg.nrrd", ".nii.gz", ".tar.gz")


def full_suffix(path: str | os.PathLike) -> str:
    """The suffix a writer needs to see to pick the format: ``.nii.gz`` and ``.seg.nrrd`` stay whole."""
    name = Path(path).name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return Path(path).name[-len(suffix):]
    return Path(path).suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path`` with ``os.replace``.

    The temporary name is hidden (leading dot), unique, and keeps ``path``'s suffix so that writers that
    choose the format from the extension (SimpleITK, PIL) write the right one. If the body raises, the
    temporary file is removed and ``path`` is left as it was.

    Raises:
        OutputError: the folder does not exist or the rename fails.
    """
    path = Path(path)
    try:
        if not path.parent.is_dir():
            raise OutputError(f"cannot write here: the folder {path.parent} does not exist", path)
        if path.is_dir():
            raise OutputError("cannot write here: a folder of that name exists", path)
    except OSError as err:  # a name too long for the file system, a folder that cannot be searched
        raise OutputError(f"cannot be written ({err.strerror or err})", path) from err
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial{full_suffix(path)}")
    try:
        yield temporary
        if not temporary.is_file():
            raise OutputError(f"the writer did not produce {temporary.name}", path)
        os.replace(temporary, path)
    except OSError as err:
        raise OutputError(f"cannot be written ({err.strerror or err})", path) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
