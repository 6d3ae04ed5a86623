"""Small image datasets the tests make themselves from the demo phantom, in the layout of NIH ChestX-ray14 64 px.

:func:`write_class_folders` writes ``{train,valid}/{0_normal,1_abnormal}/<patient>_<index>.png`` (RGB PNGs, as the
64 px NIH copy in ``../shared/data/nih1000_64px`` has them) from phantoms of different seeds: the abnormal ones
with the phantom's opacity, the normal ones without, several images per patient. ``boxes.csv`` gives the opacity
boxes of the abnormal images in 64 px coordinates (columns ``Image Index, Finding Label, x_64, y_64, w_64,
h_64``). Tests that need images of chest anatomy rather than real anatomy (plumbing, shapes, caching, manifests)
read these instead of the real data, so they run on every machine.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from PilletGANLib.demo.phantom import make_phantom_radiograph

__all__ = ["PhantomFolders", "phantom_normals", "write_class_folders", "write_normals"]

#: The phantom is drawn at this size (its minimum) and box-averaged down to the dataset's size.
_DRAW_SIZE = 128


@dataclass
class PhantomFolders:
    """What :func:`write_class_folders` wrote."""

    root: Path
    #: image path -> opacity box ``[x1, y1, x2, y2]`` in the image's pixels (abnormal images only)
    boxes: dict[Path, list[float]] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)

    def images_of(self, split: str, label: str) -> list[Path]:
        folder = self.root / split / ("1_abnormal" if label == "disease" else "0_normal")
        return sorted(p for p in self.images if p.parent == folder)


def _phantom(seed: int, opacity: bool, size: int) -> tuple[np.ndarray, list[float] | None]:
    phantom = make_phantom_radiograph(size=(_DRAW_SIZE, _DRAW_SIZE), opacity=opacity, seed=seed)
    factor = _DRAW_SIZE // size
    grey = phantom.pixels.astype(np.float32).reshape(size, factor, size, factor).mean(axis=(1, 3))
    pixels = np.round(grey / 4095.0 * 255.0).clip(0, 255).astype(np.uint8)
    box = phantom.meta["opacity_box"]
    return pixels, None if box is None else [v / factor for v in box]


def write_normals(folder: Path, count: int, size: int = 64, seed: int = 0) -> list[Path]:
    """``count`` healthy phantoms as RGB PNGs ``<patient>_000.png``, one patient each (NIH-style names)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pixels, _ = _phantom(seed * 10_000 + index, False, size)
        paths.append(folder / f"{index + 1:08d}_000.png")
        Image.fromarray(pixels).convert("RGB").save(paths[-1])
    return paths


def phantom_normals(count: int, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """``count`` healthy phantoms of ``size`` x ``size`` as 8-bit grey arrays (float32), drawn at that size."""
    return [np.round(make_phantom_radiograph(size=(size, size), opacity=False, seed=seed * 10_000 + index).pixels
                     / 4095.0 * 255.0).astype(np.float32) for index in range(count)]


def write_class_folders(root: Path, per_class: int = 12, size: int = 64, images_per_patient: int = 2,
                        seed: int = 0) -> PhantomFolders:
    """``per_class`` images of each class in ``train`` and ``per_class // 2`` (at least 2) in ``valid``."""
    if _DRAW_SIZE % size:
        raise ValueError(f"size must divide {_DRAW_SIZE}")
    written = PhantomFolders(root)
    patient = 1
    counts = {"train": per_class, "valid": max(2, per_class // 2)}
    for split, count in counts.items():
        for folder, opacity in (("0_normal", False), ("1_abnormal", True)):
            target = root / split / folder
            target.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                if index and index % images_per_patient == 0:
                    patient += 1
                pixels, box = _phantom(seed * 10_000 + patient * 100 + index, opacity, size)
                path = target / f"{patient:08d}_{index % images_per_patient:03d}.png"
                Image.fromarray(pixels).convert("RGB").save(path)
                written.images.append(path)
                if box is not None:
                    written.boxes[path] = box
            patient += 1
    with open(root / "boxes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Index", "Finding Label", "x_64", "y_64", "w_64", "h_64"])
        for path, (x1, y1, x2, y2) in sorted(written.boxes.items()):
            writer.writerow([path.name, "Pneumonia", x1, y1, x2 - x1, y2 - y1])
    return written
