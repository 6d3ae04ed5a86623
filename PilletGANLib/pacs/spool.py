"""An on-disk queue: a folder of files waiting for the next step, oldest first, that survives a restart.

Each item is one file, written under a temporary name and renamed (so a crash never leaves half an
item), named ``<nanoseconds>-<counter>-<tag>.dcm`` so that names sort in arrival order. The step
that consumes an item deletes it when done; an item whose step fails stays for the next attempt.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..outputs import atomic_path

__all__ = ["Spool", "item_tag"]

_ITEM = re.compile(r"^(\d{20})-(\d{8})-([A-Za-z0-9_.-]{1,32})\.dcm$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def item_tag(item: Path) -> str:
    """The tag an item was queued with (``""`` for a name that is not an item's)."""
    match = _ITEM.match(item.name)
    return match.group(3) if match else ""


class Spool:
    """The queue in ``folder`` (created when missing)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def _name(self, tag: str) -> Path:
        tag = _UNSAFE.sub("_", tag.strip())[:32] or "item"
        with self._lock:
            number = next(self._counter) % 10**8
        return self.folder / f"{time.time_ns():020d}-{number:08d}-{tag}.dcm"

    @contextlib.contextmanager
    def new_item(self, tag: str) -> Iterator[Path]:
        """Yield a hidden path to write a new item to; it joins the queue, whole, when the block ends without error.

        The file can be examined inside the block before any consumer sees it; a block that raises queues nothing.
        Raises :class:`~PilletGANLib.errors.OutputError` when the item cannot be written.
        """
        with atomic_path(self._name(tag)) as temporary:
            yield temporary

    def put_file(self, source: str | os.PathLike, tag: str) -> Path:
        """Queue a copy of the file ``source``; returns the item's path."""
        target = self._name(tag)
        with atomic_path(target) as temporary:
            shutil.copyfile(source, temporary)
        return target

    def pending(self) -> list[Path]:
        """The items waiting, oldest first (temporaries and foreign files ignored)."""
        try:
            names = sorted(entry.name for entry in os.scandir(self.folder) if entry.is_file() and _ITEM.match(entry.name))
        except FileNotFoundError:
            return []
        return [self.folder / name for name in names]

    def __len__(self) -> int:
        return len(self.pending())
