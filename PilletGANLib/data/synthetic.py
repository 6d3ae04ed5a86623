"""Semi-synthetic datasets: real normal radiographs and opacity-inserted twins of other patients.

From a manifest's healthy images, patients are split into two disjoint groups. The first group's
images are written unchanged (apart from intensity normalization and optional resizing) as
``healthy``; the second group's get one synthetic opacity each
(:func:`~PilletGANLib.transforms.lesions.insert_synthetic_opacity`) and are written as ``disease``
with a pixel-exact mask and the mask's connected-component boxes. Every figure measured on such a
dataset is semi-synthetic; the dataset's README.txt says so.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import Compose
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from ..errors import ConfigurationError, DataError, InputFileError, OutputError
from ..text import path_text
from ..transforms.geometry import SquarePadResized
from ..transforms.io import LoadCXRd
from ..transforms.lesions import check_opacity_options, insert_synthetic_opacity
from ..transforms.pipeline import DEFAULT_PERCENTILES, intensity_normalization
from ..version import __version__
from .manifest import ManifestRecord, write_manifest
from .splits import assign_splits, patient_key

__all__ = ["mask_boxes", "write_synthetic_dataset"]

logger = logging.getLogger(__name__)


def mask_boxes(mask: np.ndarray) -> np.ndarray:
    """``(n, 4)`` ``x1, y1, x2, y2`` pixel-edge boxes of the mask's 8-connected components."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in ndimage.find_objects(labels) if s is not None]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _write_png(array: np.ndarray, path: Path) -> None:
    """Write an 8-bit greyscale PNG atomically (temporary name in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(array.astype(np.uint8), mode="L").save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the image ({err})", path) from err


def _write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write ({err})", path) from err


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((image + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _unique_name(key: str, used: set[str]) -> str:
    name, n = key, 1
    while name in used:
        n += 1
        name = f"{key}_{n}"
    used.add(name)
    return name


def _readme(source: str, size: int | None, seed: int, counts: Mapping[str, int], options: Mapping[str, Any],
            skipped: Mapping[str, int]) -> str:
    resize = f"padded to a square and resized to {size} x {size} px" if size else "kept at their own resolution"
    lines = [
        "SEMI-SYNTHETIC DATA: the disease images and their masks are made by software, not by clinicians.",
        "Every figure computed on this dataset must be labelled semi-synthetic.",
        "",
        f"Made by pilletgan {__version__} (`pilletgan data manifest synthetic`) from the healthy images of:",
        f"  {source}",
        "",
        f"healthy: {counts['healthy']} real normal radiographs of {counts['healthy_patients']} patients, unchanged apart",
        f"  from intensity normalization (percentiles {DEFAULT_PERCENTILES[0]} / {DEFAULT_PERCENTILES[1]} mapped to 0 / 255).",
        f"disease: {counts['disease']} real normal radiographs of {counts['disease_patients']} OTHER patients, each with one",
        "  synthetic pneumonia-like opacity inserted inside its estimated lung fields",
        "  (PilletGANLib.transforms.lesions.insert_synthetic_opacity); pixel-exact masks in masks/ (255 = lesion),",
        "  boxes in manifest.csv = bounding boxes of the mask's connected components.",
        f"Images are 8-bit greyscale PNG, {resize}. No patient is in both groups;",
        "train/val/test splits in manifest.csv are by patient. provenance.csv names each image's source file.",
        "",
        f"seed: {seed}",
        *(f"{key}: {value}" for key, value in sorted(options.items())),
    ]
    lines += [f"left out: {count} source image(s): {reason}" for reason, count in sorted(skipped.items())]
    return "\n".join(lines) + "\n"


def write_synthetic_dataset(normals: Sequence[ManifestRecord], out_dir: str | Path, size: int | None = None,
                            fraction_disease: float = 0.5, seed: int = 0, val_fraction: float = 0.15,
                            test_fraction: float = 0.0, source: str = "(records given in code)",
                            opacity_options: Mapping[str, Any] | None = None, progress: bool = True,
                            skipped: Counter[str] | None = None) -> list[ManifestRecord]:
    """Write a semi-synthetic dataset to ``out_dir`` and return its records (also in ``out_dir/manifest.csv``).

    Args:
        normals: manifest records; only the healthy ones are used.
        out_dir: a new or empty output folder (``images/healthy``, ``images/disease``, ``masks``,
            ``manifest.csv``, ``provenance.csv``, ``README.txt``).
        size: pad to a square and resize to ``size`` px (a multiple of 4); None keeps each image's size.
        fraction_disease: fraction of the patients whose images get an opacity.
        seed: seeds the patient grouping, every opacity and the split.
        val_fraction, test_fraction: patient-level split of the result.
        source: where the records came from, for the README.
        opacity_options: keyword options of :func:`insert_synthetic_opacity` (``area_range``, ...).
        progress: show a progress bar.
        skipped: a counter that receives the number of source images left out (unreadable), per reason.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError("the output folder exists and is not empty: choose a new or empty folder", out_dir)
    skipped = Counter() if skipped is None else skipped
    options = dict(opacity_options or {})
    healthy = [r for r in normals if not r.is_disease]
    patients = sorted({patient_key(r) for r in healthy})
    if len(patients) < 2:
        raise DataError(f"a semi-synthetic dataset needs healthy images of at least 2 patients, got {len(patients)}")
    if not 0.0 < fraction_disease < 1.0:
        raise ConfigurationError(f"fraction_disease must lie in (0, 1), got {fraction_disease}")
    if size is not None and (size < 4 or size % 4):
        raise ConfigurationError(f"size must be a positive multiple of 4, got {size}")
    try:
        check_opacity_options(options)
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"the opacity options cannot be used: {err}") from err
    n_disease = min(len(patients) - 1, max(1, round(fraction_disease * len(patients))))
    order = np.random.default_rng(seed).permutation(len(patients))
    disease_patients = {patients[i] for i in order[:n_disease]}

    steps = [LoadCXRd("image"), intensity_normalization("image")]
    if size is not None:
        steps.append(SquarePadResized("image", size, pad_value=-1.0))
    preprocess = Compose(steps)
    records, provenance, used = [], [], set()
    for record in tqdm(healthy, desc="semi-synthetic", unit="image", disable=not progress):
        try:
            image = preprocess({"image": str(record.image)})["image"].numpy()[0]
        except InputFileError as err:
            skipped[f"unreadable ({type(err).__name__})"] += 1
            logger.warning("left out: %s", err)
            continue
        patient = patient_key(record)
        name = _unique_name(record.key, used)
        mask_path, boxes = None, np.zeros((0, 4))
        if patient in disease_patients:
            rng = np.random.default_rng([seed, _stable_int(str(record.image))])
            image, mask = insert_synthetic_opacity(image, rng, **options)
            mask_path = out_dir / "masks" / f"{name}.png"
            _write_png(mask.astype(np.uint8) * 255, mask_path)
            boxes = mask_boxes(mask)
        label = "disease" if mask_path else "healthy"
        image_path = out_dir / "images" / label / f"{name}.png"
        _write_png(_to_uint8(image), image_path)
        records.append(ManifestRecord(image=image_path, label=label, patient_id=record.patient_id,
                                      boxes=boxes, mask=mask_path))
        provenance.append((path_text(os.path.relpath(image_path, out_dir)), path_text(os.path.abspath(record.image)),
                           patient, label))
    if not records:
        raise DataError(f"none of the {len(healthy)} healthy images could be read (left out: {dict(skipped)})")
    records = assign_splits(records, val_fraction, test_fraction, seed)
    write_manifest(records, out_dir / "manifest.csv")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(("image", "source", "patient_id", "label"))
    writer.writerows(provenance)
    _write_text(table.getvalue(), out_dir / "provenance.csv")
    counts = {label: sum(r.label == label for r in records) for label in ("healthy", "disease")}
    counts.update({f"{label}_patients": len({patient_key(r) for r in records if r.label == label})
                   for label in ("healthy", "disease")})
    readme_options = {"size": size, "fraction_disease": fraction_disease, **options}
    _write_text(_readme(source, size, seed, counts, readme_options, skipped), out_dir / "README.txt")
    return records
