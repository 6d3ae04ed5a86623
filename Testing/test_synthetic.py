"""Lung-field estimate, synthetic opacity insertion and the semi-synthetic dataset writer, on healthy phantoms
(and the lung-field estimate against real SIIM lung boxes where ../shared/data exists)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from phantom_data import phantom_normals, write_normals
from PIL import Image
from scipy import ndimage

from PilletGANLib.cli import main
from PilletGANLib.data.manifest import ManifestRecord, read_manifest, write_manifest
from PilletGANLib.data.splits import check_patient_disjoint
from PilletGANLib.data.synthetic import mask_boxes, write_synthetic_dataset
from PilletGANLib.errors import DataError
from PilletGANLib.transforms.lesions import InsertSyntheticOpacity, InsertSyntheticOpacityd, insert_synthetic_opacity
from PilletGANLib.transforms.lungs import estimate_lung_mask, lung_prior_mask


def grey(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float32)


def normalized(pixels: np.ndarray) -> np.ndarray:
    low, high = np.percentile(pixels, (0.5, 99.5))
    return np.clip((pixels - low) / (high - low) * 2 - 1, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def siim_normals(shared_data) -> list[tuple[str, np.ndarray]]:
    """The first 20 real 'Negative for Pneumonia' SIIM images (256 px, as read from disk)."""
    root = shared_data / "siim_covid_256"
    with open(root / "labels" / "image_labels.csv", newline="") as handle:
        ids = [r["image_id"] for r in csv.DictReader(handle) if r["study_label"] == "Negative for Pneumonia"][:20]
    return [(i, grey(root / "images" / f"{i}.jpg")) for i in ids]


@pytest.fixture(scope="module")
def normals_256() -> list[np.ndarray]:
    """Eight healthy 256 px phantoms (8-bit grey)."""
    return phantom_normals(8)


@pytest.fixture(scope="module")
def nih_normals(tmp_path_factory) -> list[Path]:
    """24 healthy 64 px phantoms saved as NIH-style RGB PNGs, one patient each."""
    return write_normals(tmp_path_factory.mktemp("normals"), 24)


# ------------------------------------------------------------------------------------------ lungs


@pytest.mark.slow
def test_lung_mask_lies_in_the_lung_box_and_follows_the_image(siim_normals, shared_data):
    with open(shared_data / "siim_covid_256" / "labels" / "lung_boxes_dungnb1333.csv", newline="") as handle:
        lung_boxes = {r["image_id"]: [round(float(r[k])) for k in ("x1_256", "y1_256", "x2_256", "y2_256")]
                      for r in csv.DictReader(handle)}
    precision, shifted_iou = [], []
    for image_id, image in siim_normals:
        mask = estimate_lung_mask(image)
        assert mask.shape == image.shape and mask.dtype == bool
        labels, count = ndimage.label(mask)
        centres = [c for _, c in ndimage.center_of_mass(mask, labels, range(1, count + 1))]
        assert min(centres) < 128 < max(centres), "one lung on each side"
        x1, y1, x2, y2 = lung_boxes[image_id]
        precision.append(mask[y1:y2, x1:x2].sum() / mask.sum())
        # the same radiograph framed differently (dark border, off-centre): the estimate must move with it
        canvas = np.zeros((320, 352), dtype=np.float32)
        canvas[40:296, 70:326] = image
        moved = estimate_lung_mask(canvas)[40:296, 70:326]
        shifted_iou.append((mask & moved).sum() / (mask | moved).sum())
    prior = lung_prior_mask((256, 256))
    prior_shifted = lung_prior_mask((320, 352))[40:296, 70:326]
    assert np.median(precision) > 0.95
    assert np.median(shifted_iou) > 0.65 > (prior & prior_shifted).sum() / (prior | prior_shifted).sum()


@pytest.mark.slow
def test_lung_mask_fallbacks_shapes_and_hull(normals_256):
    flat = np.full((100, 80), 7.0, dtype=np.float32)
    np.testing.assert_array_equal(estimate_lung_mask(flat), lung_prior_mask((100, 80)))
    assert not estimate_lung_mask(flat, fallback=False).any()
    image = normals_256[0]
    big = np.kron(image, np.ones((4, 3), dtype=np.float32))  # 1024 x 768, not square
    mask_big = estimate_lung_mask(torch.from_numpy(big)[None])
    assert mask_big.shape == big.shape
    small = estimate_lung_mask(image)
    resized_back = mask_big[2::4, 1::3]
    assert (small & resized_back).sum() / (small | resized_back).sum() > 0.8
    hull = estimate_lung_mask(image, hull=True)
    assert (hull | small).sum() == hull.sum() and hull.sum() >= small.sum()


# -------------------------------------------------------------------------------------- opacities


@pytest.mark.slow
def test_opacity_is_reproducible_in_the_lungs_of_the_right_size_and_local(normals_256):
    area_range = (0.05, 0.10)
    for k, pixels in enumerate(normals_256):
        image = normalized(pixels)[None]
        out, mask = insert_synthetic_opacity(image, np.random.default_rng(k), area_range=area_range)
        again, mask_again = insert_synthetic_opacity(image, np.random.default_rng(k), area_range=area_range)
        np.testing.assert_array_equal(out, again)
        np.testing.assert_array_equal(mask, mask_again)
        lungs = estimate_lung_mask(image)
        assert mask.any() and not (mask & ~lungs).any(), "the opacity's mask lies inside the estimated lungs"
        assert area_range[0] - 0.005 <= mask.sum() / lungs.sum() <= area_range[1] + 0.005
        assert out.dtype == image.dtype and out.shape == image.shape
        assert out.min() >= -1.0 and out.max() <= 1.0 and np.all(out >= image), "brightens only, stays in range"
        change = (out - image)[0]
        assert change[mask].mean() > 0.05, "the opacity is visible"
        distance = ndimage.distance_transform_edt(~mask)
        radius = np.sqrt(mask.sum())
        assert distance[change > 1e-6].max() <= 1.5 * radius + 2
        assert distance[change > 0.05].max() <= 0.75 * radius + 2
        assert change[~mask].sum() < 0.5 * change.sum()
    first, _ = insert_synthetic_opacity(image, np.random.default_rng(1))
    assert not np.array_equal(first, out)


def test_opacity_respects_a_given_lung_mask_and_rejects_an_empty_one(normals_256):
    image = normalized(normals_256[1])
    lung = np.zeros(image.shape, dtype=bool)
    lung[60:180, 40:110] = True
    _, mask = insert_synthetic_opacity(image, np.random.default_rng(0), lung_mask=lung)
    assert mask.any() and not (mask & ~lung).any()
    with pytest.raises(ValueError, match="empty"):
        insert_synthetic_opacity(image, np.random.default_rng(0), lung_mask=np.zeros(image.shape, dtype=bool))
    with pytest.raises(ValueError, match=r"area_range \(0.3, 0.1\)"):
        insert_synthetic_opacity(image, np.random.default_rng(0), area_range=(0.3, 0.1))


@pytest.mark.slow
def test_dictionary_transform_is_seeded_and_keeps_types(nih_normals):
    image = MetaTensor(torch.from_numpy(normalized(grey(nih_normals[0])))[None], meta={"filename_or_obj": "x.png"})
    first = InsertSyntheticOpacityd(keys="image", mask_key="lesion_mask").set_random_state(seed=7)({"image": image})
    second = InsertSyntheticOpacityd(keys="image", mask_key="lesion_mask").set_random_state(seed=7)({"image": image})
    other = InsertSyntheticOpacityd(keys="image").set_random_state(seed=8)({"image": image})
    assert isinstance(first["image"], MetaTensor) and isinstance(first["lesion_mask"], MetaTensor)
    assert first["lesion_mask"].shape == (1, 64, 64) and first["lesion_mask"].sum() > 0
    torch.testing.assert_close(first["image"], second["image"])
    torch.testing.assert_close(first["lesion_mask"], second["lesion_mask"])
    assert not torch.equal(first["lesion_mask"], other["lesion_mask"])

    never = InsertSyntheticOpacityd(keys="image", prob=0.0)({"image": image})
    assert torch.equal(never["image"], image) and never["lesion_mask"].sum() == 0

    half = InsertSyntheticOpacity(prob=0.5).set_random_state(seed=0)
    array = image.numpy()
    applied = [bool(half(array)[1].any()) for _ in range(20)]
    assert 3 <= sum(applied) <= 17
    out, mask = half(array)
    assert isinstance(out, np.ndarray) and isinstance(mask, np.ndarray) and mask.shape == (1, 64, 64)
    with pytest.raises(ValueError):
        InsertSyntheticOpacityd(keys=["image", "other"])


# ------------------------------------------------------------------------------------ the dataset


def _normals_manifest(nih_normals: list[Path], n: int = 12) -> list[ManifestRecord]:
    return [ManifestRecord(image=p, label="healthy", patient_id=p.name.split("_")[0]) for p in nih_normals[:n]]


def test_mask_boxes_are_component_bounds():
    mask = np.zeros((10, 12), dtype=bool)
    mask[1:3, 2:5] = True
    mask[6:9, 8:12] = True
    mask[3, 5] = True  # touches the first component diagonally: the same lesion
    np.testing.assert_array_equal(mask_boxes(mask), [[2, 1, 6, 4], [8, 6, 12, 9]])


@pytest.mark.slow
def test_synthetic_dataset_has_disjoint_groups_unchanged_normals_and_exact_masks(nih_normals, tmp_path):
    normals = _normals_manifest(nih_normals)
    sick = ManifestRecord(image=nih_normals[20], label="disease", patient_id="ignored")
    records = write_synthetic_dataset([*normals, sick], tmp_path / "syn", seed=3, progress=False)
    written = read_manifest(tmp_path / "syn" / "manifest.csv", check_files=True)
    assert [(r.image.name, r.label, r.patient_id, r.split) for r in written] == \
           [(r.image.name, r.label, r.patient_id, r.split) for r in records]
    assert len(written) == len(normals), "only the healthy source images are used"
    groups = {label: {r.patient_id for r in written if r.label == label} for label in ("healthy", "disease")}
    assert groups["healthy"] and groups["disease"] and not groups["healthy"] & groups["disease"]
    check_patient_disjoint(written)
    source = {p.name: p for p in nih_normals}
    for record in written:
        pixels = grey(record.image)
        original = (normalized(grey(source[record.image.name])) + 1) * 127.5
        if record.label == "healthy":
            assert record.mask is None and len(record.boxes) == 0
            assert np.abs(pixels - original).max() <= 1.0
            continue
        mask = grey(record.mask) > 0
        assert mask.shape == pixels.shape and mask.any()
        np.testing.assert_allclose(record.boxes, mask_boxes(mask), atol=1e-3)
        change = pixels - original
        assert change[mask].mean() > 5 and change.min() >= -1.0
    readme = (tmp_path / "syn" / "README.txt").read_text()
    assert "SEMI-SYNTHETIC" in readme and "OTHER patients" in readme
    with open(tmp_path / "syn" / "provenance.csv", newline="") as handle:
        provenance = list(csv.DictReader(handle))
    assert Counter(r["label"] for r in provenance) == Counter(r.label for r in written)
    again = write_synthetic_dataset(normals, tmp_path / "again", seed=3, progress=False)
    assert [(r.label, r.split) for r in again] == [(r.label, r.split) for r in records]
    for a, b in zip(again, records, strict=True):
        np.testing.assert_array_equal(grey(a.image), grey(b.image))


def test_synthetic_command_resizes_and_refuses_one_patient(nih_normals, tmp_path, capsys):
    normals_csv = tmp_path / "normals.csv"
    write_manifest(_normals_manifest(nih_normals, 8), normals_csv)
    out = tmp_path / "syn"
    assert main(["data", "manifest", "synthetic", str(normals_csv), "--out", str(out), "--size", "32", "--seed", "1",
                 "--area-range", "0.05", "0.1", "--no-progress"]) == 0
    assert "semi-synthetic" in capsys.readouterr().out
    records = read_manifest(out / "manifest.csv", check_files=True)
    assert {grey(r.image).shape for r in records} == {(32, 32)}
    assert all(grey(r.mask).shape == (32, 32) for r in records if r.mask)
    assert "area_range: (0.05, 0.1)" in (out / "README.txt").read_text()
    with pytest.raises(DataError, match="at least 2 patients"):
        write_synthetic_dataset(_normals_manifest(nih_normals, 1), tmp_path / "one", progress=False)
    assert main(["data", "manifest", "synthetic", str(normals_csv), "--out", str(out), "--no-progress"]) == 2, \
        "an existing dataset is not overwritten"
    for ranges in (["--area-range", "0.2", "0.1"], ["--density-range", "nan", "1"], ["--area-range", "0.01", "5"]):
        capsys.readouterr()  # a traceback (ValueError at the first disease image) before; now refused before reading
        assert main(["data", "manifest", "synthetic", str(normals_csv), "--out", str(tmp_path / "bad"),
                     "--no-progress", *ranges]) == 2
        assert "the opacity options cannot be used: area_range must lie in (0, 1)" in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()
