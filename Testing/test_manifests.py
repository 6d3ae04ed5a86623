"""Manifest builders (RSNA, NIH, SIIM-FISABIO-RSNA COVID-19, class folders), patient splits and the CLI.

The NIH and SIIM layouts are rebuilt in temporary folders from the real images and the official label tables in
../shared/data; the RSNA layout and the class folders are written by the tests from the demo phantom, with label
tables in the official format. Expected labels and boxes are recomputed here from those tables independently.
"""

from __future__ import annotations

import csv
import gzip
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from phantom_data import phantom_normals
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

from PilletGANLib import load_cxr
from PilletGANLib.cli import main
from PilletGANLib.data.manifest import ManifestRecord, read_manifest, write_manifest
from PilletGANLib.data.sources import (
    build_folder_manifest,
    build_nih_manifest,
    build_rsna_manifest,
    build_siim_covid_manifest,
    detect_siim_layout,
    folder_label,
)
from PilletGANLib.data.splits import assign_splits, check_patient_disjoint, patient_key, split_by_folds
from PilletGANLib.errors import ConfigurationError, DataError


def write_cr_dicom(pixels: np.ndarray, path: Path, patient_id: str, study_uid: str | None = None) -> None:
    """Write an 8-bit MONOCHROME2 CR image (uncompressed) holding ``pixels``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = patient_id, "Anonymous", "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def grey(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L"))


def records_by_name(records: list[ManifestRecord]) -> dict[str, ManifestRecord]:
    return {r.image.name: r for r in records}


def described(records: list[ManifestRecord]) -> list[tuple]:
    """What a manifest says about each record, comparable with ``==`` (boxes to the millipixel a CSV keeps)."""
    return [(r.image.name, r.label, r.patient_id, r.split, r.localization_only, np.round(r.boxes, 3).tolist())
            for r in records]


# --------------------------------------------------------------------------------------------- splits


def _toy_records(n_patients: int = 200) -> list[ManifestRecord]:
    records = []
    for p in range(n_patients):
        for i in range(1 + p % 3):
            label = "disease" if p % 2 and i == 0 else "healthy"
            records.append(ManifestRecord(image=Path(f"/x/{p:05d}_{i:03d}.png"), label=label, patient_id=f"P{p}"))
    return records


def test_assign_splits_is_by_patient_stratified_and_deterministic():
    records = _toy_records()
    split = assign_splits(records, val_fraction=0.15, test_fraction=0.1, seed=3)
    assert [r.image for r in split] == [r.image for r in records]
    assert all(r.split is None for r in records), "the input records are not modified"
    check_patient_disjoint(split)
    for has_disease in (False, True):
        patients = {r.patient_id: r.split for r in split if (int(r.patient_id[1:]) % 2 == 1) == has_disease}
        counts = Counter(patients.values())
        assert counts["val"] == round(0.15 * len(patients)) and counts["test"] == round(0.10 * len(patients))
    assert [r.split for r in assign_splits(records, 0.15, 0.1, seed=3)] == [r.split for r in split]
    assert [r.split for r in assign_splits(records, 0.15, 0.1, seed=4)] != [r.split for r in split]


def test_assign_splits_without_patient_ids_and_bad_fractions():
    records = [ManifestRecord(image=Path(f"/x/img{i}.png"), label="healthy") for i in range(40)]
    split = assign_splits(records, val_fraction=0.25, seed=0)
    assert Counter(r.split for r in split) == {"train": 30, "val": 10}
    assert len({patient_key(r) for r in split}) == 40
    with pytest.raises(DataError):
        assign_splits(records, val_fraction=0.6, test_fraction=0.5)


def test_split_by_folds_and_disjointness_check():
    records = _toy_records(10)
    folds = [int(r.patient_id[1:]) % 4 for r in records]
    split = split_by_folds(records, folds, val_folds=(3,), test_folds=(2,))
    assert all(r.split == {3: "val", 2: "test"}.get(f, "train") for r, f in zip(split, folds, strict=True))
    mixed = [records[0].__class__(image=r.image, label=r.label, patient_id="same", split=s)
             for r, s in zip(records[:2], ("train", "val"), strict=True)]
    with pytest.raises(DataError, match="patient same"):
        check_patient_disjoint(mixed)
    with pytest.raises(DataError):
        split_by_folds(records, [0] * len(records), val_folds=(1,), test_folds=(1,))


# ----------------------------------------------------------------------------------------------- RSNA


def _rsna_expected(labels_csv: Path) -> dict[str, list[list[float]]]:
    expected: dict[str, list[list[float]]] = defaultdict(list)
    with open(labels_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Target"] == "1":
                x, y, w, h = (float(row[k]) for k in ("x", "y", "width", "height"))
                expected[row["patientId"]].append([x, y, x + w, y + h])
            else:
                expected.setdefault(row["patientId"], [])
    return expected


#: Boxes per RSNA-layout image written by the fixture (11 in all), and patients listed without images on disk.
_RSNA_BOXES = (1, 2, 2, 3, 1, 2)
_RSNA_ABSENT, _RSNA_NORMALS = 4, 3


def _rsna_patient(index: int) -> str:
    return f"{index:08x}-0000-4000-8000-{index:012x}"


@pytest.fixture(scope="module")
def rsna_folder(tmp_path_factory) -> Path:
    """An RSNA-layout folder written by the test: 6 phantom radiographs (256 px) with opacities as DICOMs named by
    patientId, and ``stage_2_train_labels.csv`` in the official format listing their 11 boxes, 3 healthy patients
    and 4 patients with boxes whose images are not on disk."""
    root = tmp_path_factory.mktemp("rsna")
    rng = np.random.default_rng(0)
    rows = [["patientId", "x", "y", "width", "height", "Target"]]
    for index, count in enumerate(_RSNA_BOXES):
        patient = _rsna_patient(index)
        write_cr_dicom(phantom_normals(1, seed=100 + index)[0].astype(np.uint8),
                       root / "stage_2_train_images" / f"{patient}.dcm", patient)
        for _ in range(count):
            x, y, width, height = np.round(rng.uniform((20, 20, 20, 20), (120, 120, 100, 100)), 1)
            rows.append([patient, x, y, width, height, 1])
    for index in range(len(_RSNA_BOXES), len(_RSNA_BOXES) + _RSNA_ABSENT):
        rows.append([_rsna_patient(index), 10.0, 20.0, 30.0, 40.0, 1])
    rows += [[_rsna_patient(1000 + index), "", "", "", "", 0] for index in range(_RSNA_NORMALS)]
    with open(root / "stage_2_train_labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


@pytest.mark.slow
def test_rsna_manifest_has_the_boxes_of_the_official_csv(rsna_folder):
    expected = _rsna_expected(rsna_folder / "stage_2_train_labels.csv")
    skipped: Counter[str] = Counter()
    records = build_rsna_manifest(rsna_folder, skipped=skipped)
    assert len(records) == 6
    for record in records:
        patient = record.image.stem
        assert record.patient_id == patient and record.label == "disease" and record.split in ("train", "val")
        assert len(expected[patient]) >= 1
        np.testing.assert_allclose(np.sort(record.boxes, axis=0), np.sort(np.array(expected[patient]), axis=0))
    assert skipped == {"listed in the labels but not on disk": len(expected) - 6}
    image, meta = load_cxr(records[0].image)
    assert meta["format"] == "dicom" and image.shape == (256, 256)
    index = int(records[0].image.stem[-12:], 16)
    np.testing.assert_array_equal(image, phantom_normals(1, seed=100 + index)[0].astype(np.uint8))


@pytest.mark.slow
def test_rsna_detailed_classes_decide_healthy_and_excluded(rsna_folder, tmp_path):
    root = tmp_path / "rsna"
    shutil.copytree(rsna_folder, root)
    expected = _rsna_expected(root / "stage_2_train_labels.csv")
    normals = [p for p, boxes in expected.items() if not boxes][:2]
    normal_pixels = phantom_normals(1, seed=7)[0].astype(np.uint8)
    for patient in normals:
        write_cr_dicom(normal_pixels, root / "stage_2_train_images" / f"{patient}.dcm", patient)
    positives = [p.stem for p in (root / "stage_2_train_images").glob("*.dcm") if p.stem not in normals]

    without_classes = records_by_name(build_rsna_manifest(root))
    assert {without_classes[f"{p}.dcm"].label for p in normals} == {"healthy"}

    # a class table written by the test, in the official format
    with open(root / "stage_2_detailed_class_info.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patientId", "class"])
        writer.writerow([normals[0], "Normal"])
        writer.writerow([normals[1], "No Lung Opacity / Not Normal"])
        writer.writerows([p, "Lung Opacity"] for p in positives)
    skipped: Counter[str] = Counter()
    records = records_by_name(build_rsna_manifest(root, skipped=skipped))
    assert records[f"{normals[0]}.dcm"].label == "healthy" and len(records[f"{normals[0]}.dcm"].boxes) == 0
    assert f"{normals[1]}.dcm" not in records
    assert skipped["'No Lung Opacity / Not Normal' (neither healthy nor opacity)"] == 1
    assert sum(r.label == "disease" for r in records.values()) == 6

    with open(root / "stage_2_detailed_class_info.csv", "a", newline="") as handle:
        csv.writer(handle).writerow([normals[0], "Lung Opacity"])
    with pytest.raises(DataError, match="class 'lung opacity' but 0 box"):
        build_rsna_manifest(root)


@pytest.mark.slow
def test_rsna_folder_without_images_is_a_data_error(tmp_path, rsna_folder):
    (tmp_path / "stage_2_train_images").mkdir()
    shutil.copy(rsna_folder / "stage_2_train_labels.csv", tmp_path)
    with pytest.raises(DataError, match="no usable RSNA images"):
        build_rsna_manifest(tmp_path)


@pytest.mark.slow
def test_rsna_command_writes_a_manifest_with_the_boxes(rsna_folder, tmp_path, capsys):
    out = tmp_path / "rsna.csv"
    assert main(["data", "manifest", "rsna", str(rsna_folder), "--out", str(out), "--val-fraction", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert "disease" in printed and "left out" in printed and "boxes: 11 on 6 image(s)" in printed
    expected = _rsna_expected(rsna_folder / "stage_2_train_labels.csv")
    for record in read_manifest(out, check_files=True):
        np.testing.assert_allclose(np.sort(record.boxes, axis=0), np.sort(np.array(expected[record.image.stem]), axis=0),
                                   atol=1e-3)


# ------------------------------------------------------------------------------------------------ NIH


def _nih_table(shared_data: Path) -> dict[str, dict[str, str]]:
    with gzip.open(shared_data / "nih_labels" / "Data_Entry_2017_v2020.csv.gz", "rt", newline="") as handle:
        return {row["Image Index"]: row for row in csv.DictReader(handle)}


def _nih64_boxes(shared_data: Path) -> dict[tuple[str, str], list[float]]:
    with open(shared_data / "nih1000_64px" / "boxes.csv", newline="") as handle:
        return {(row["Image Index"], row["Finding Label"]): [float(row[k]) for k in ("x_64", "y_64", "w_64", "h_64")]
                for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def nih_folder(tmp_path_factory, shared_data) -> Path:
    """An NIH-layout folder: the real NIH images (official release sub-folders) + the real tables."""
    root = tmp_path_factory.mktemp("nih")
    fullres = {png.name: png for png in (shared_data / "nih_fullres").glob("*.png")}
    (root / "images").mkdir()
    for name, png in fullres.items():
        shutil.copy(png, root / "images" / name)
    small = [png for png in sorted((shared_data / "nih1000_64px").rglob("*.png")) if png.name not in fullres]
    for k, png in enumerate(small):
        target = root / f"images_00{1 + k % 2}" / "images" / png.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, target)
    shutil.copy(shared_data / "nih_labels" / "Data_Entry_2017_v2020.csv.gz", root)
    shutil.copy(shared_data / "nih_labels" / "BBox_List_2017.csv", root)
    return root


@pytest.mark.slow
def test_nih_manifest_labels_follow_the_nih_table(nih_folder, shared_data):
    table = _nih_table(shared_data)
    skipped: Counter[str] = Counter()
    records = records_by_name(build_nih_manifest(nih_folder, skipped=skipped))
    on_disk = {p.name for p in nih_folder.rglob("*.png")}
    usable = {}
    for name, row in table.items():
        labels = set(row["Finding Labels"].split("|"))
        if labels == {"No Finding"}:
            usable[name] = "healthy"
        elif "Pneumonia" in labels:
            usable[name] = "disease"
    expected = {name: label for name, label in usable.items() if name in on_disk}
    assert {n: r.label for n, r in records.items()} == expected
    assert records["00027426_000.png"].label == "healthy" and "00000001_000.png" not in records
    assert sum(r.label == "disease" for r in records.values()) >= 7
    assert all(r.patient_id == table[n]["Patient ID"] for n, r in records.items())
    assert skipped["listed in the table but not on disk"] == len(usable) - len(expected)
    check_patient_disjoint(records.values())
    assert "00000032_037.png" not in records, "Infiltration only: not a disease image with the default findings"
    # the official Pneumonia box, rescaled from the 1024 grid to this 64 px copy
    box = _nih64_boxes(shared_data)[("00000150_002.png", "Pneumonia")]
    np.testing.assert_allclose(records["00000150_002.png"].boxes, [[box[0], box[1], box[0] + box[2], box[1] + box[3]]],
                               rtol=1e-9)
    assert sum(len(r.boxes) for r in records.values()) == 1


@pytest.mark.slow
def test_nih_manifest_with_more_findings_and_the_command(nih_folder, shared_data, tmp_path, capsys):
    records = records_by_name(build_nih_manifest(nih_folder, findings=("Pneumonia", "Infiltration")))
    box = _nih64_boxes(shared_data)[("00000032_037.png", "Infiltrate")]
    np.testing.assert_allclose(records["00000032_037.png"].boxes, [[box[0], box[1], box[0] + box[2], box[1] + box[3]]])
    assert records["00000005_006.png"].label == "disease"
    with pytest.raises(DataError, match="never occur"):
        build_nih_manifest(nih_folder, findings=("Pneumonitis",))

    out = tmp_path / "nih.csv"
    assert main(["data", "manifest", "nih", str(nih_folder), "--out", str(out), "--finding", "Pneumonia,Infiltration"]) == 0
    assert "boxes: 2 on 2 image(s)" in capsys.readouterr().out
    written = records_by_name(read_manifest(out, check_files=True))
    assert {n: r.label for n, r in written.items()} == {n: r.label for n, r in records.items()}


# ---------------------------------------------------------------------------------------------- SIIM


@pytest.mark.slow
def test_siim_256_counts_and_boxes_match_the_label_tables(shared_data):
    root = shared_data / "siim_covid_256"
    assert detect_siim_layout(root) == "resized"
    with open(root / "labels" / "image_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    n_healthy = sum(r["study_label"] == "Negative for Pneumonia" and r["n_opacity_boxes"] == "0" for r in rows)
    n_disease = sum(r["study_label"] == "Typical Appearance" and int(r["n_opacity_boxes"]) > 0 for r in rows)
    records = build_siim_covid_manifest(root)
    labels = Counter(r.label for r in records)
    assert labels == {"healthy": n_healthy, "disease": n_disease}
    check_patient_disjoint(records)
    by_id = {r.image.stem: r for r in records}
    with open(root / "labels" / "boxes_256.csv", newline="") as handle:
        boxes = defaultdict(list)
        for row in csv.DictReader(handle):
            boxes[row["image_id"]].append([float(row[k]) for k in ("x1_256", "y1_256", "x2_256", "y2_256")])
    for image_id, record in by_id.items():
        if record.label == "disease":
            np.testing.assert_allclose(record.boxes, boxes[image_id])
        else:
            assert len(record.boxes) == 0 and image_id not in boxes
    patients = {r["image_id"]: r["patient_id"] for r in rows}
    assert all(r.patient_id == patients[i] for i, r in by_id.items())

    folds = {r["image_id"]: int(r["fold"]) for r in rows}
    by_fold = build_siim_covid_manifest(root, split_by="fold", val_folds=(3,), test_folds=(2,))
    assert all(r.split == {3: "val", 2: "test"}.get(folds[r.image.stem], "train") for r in by_fold)


@pytest.mark.slow
def test_siim_original_layout_reads_dicom_patient_ids(tmp_path, shared_data):
    labels = shared_data / "siim_covid_256" / "labels"
    with open(labels / "image_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["study_label"] == "Typical Appearance" and r["n_opacity_boxes"] != "0"][:3]
    chosen += [r for r in rows if r["study_label"] == "Negative for Pneumonia"][:2]
    chosen += [r for r in rows if r["study_label"] == "Atypical Appearance"][:1]
    for row in chosen:
        pixels = grey(shared_data / "siim_covid_256" / "images" / f"{row['image_id']}.jpg")
        target = tmp_path / "train" / row["study_id"] / "series1" / f"{row['image_id']}.dcm"
        write_cr_dicom(pixels, target, patient_id=f"PAT-{row['patient_id']}")
    shutil.copy(labels / "train_image_level.csv", tmp_path)
    shutil.copy(labels / "train_study_level.csv", tmp_path)
    assert detect_siim_layout(tmp_path) == "original"

    skipped: Counter[str] = Counter()
    records = {r.image.stem: r for r in build_siim_covid_manifest(tmp_path, skipped=skipped)}
    assert set(records) == {r["image_id"] for r in chosen[:5]}
    assert skipped["'Atypical Appearance' study"] >= 1
    with open(labels / "boxes_256.csv", newline="") as handle:
        original_boxes = defaultdict(list)
        for row in csv.DictReader(handle):
            original_boxes[row["image_id"]].append([float(row[k]) for k in ("x1_orig", "y1_orig", "x2_orig", "y2_orig")])
    for row in chosen[:5]:
        record = records[row["image_id"]]
        assert record.patient_id == f"PAT-{row['patient_id']}"
        assert record.label == ("disease" if row["study_label"] == "Typical Appearance" else "healthy")
        np.testing.assert_allclose(record.boxes, np.array(original_boxes[row["image_id"]]).reshape(-1, 4), atol=1e-3)
    study_ids = {r.image.stem: r.patient_id for r in build_siim_covid_manifest(tmp_path, patient_from_dicom=False)}
    assert all(study_ids[r["image_id"]] == r["study_id"] for r in chosen[:5])
    with pytest.raises(ConfigurationError):
        build_siim_covid_manifest(tmp_path, split_by="fold")
    with pytest.raises(DataError, match="not a SIIM"):
        detect_siim_layout(tmp_path / "train")


@pytest.mark.slow
def test_siim_command_with_folds(shared_data, tmp_path, capsys):
    out = tmp_path / "siim.csv"
    assert main(["data", "manifest", "siim-covid", str(shared_data / "siim_covid_256"), "--out", str(out),
                 "--split-by", "fold", "--val-folds", "3"]) == 0
    printed = capsys.readouterr().out
    assert "'Indeterminate Appearance' study" in printed
    records = read_manifest(out)
    assert {r.split for r in records} == {"train", "val"}
    check_patient_disjoint(records)
    boxed = tmp_path / "siim_boxed.csv"
    assert main(["data", "manifest", "siim-covid", str(shared_data / "siim_covid_256"), "--out", str(boxed),
                 "--split-by", "fold", "--keep-boxed"]) == 0
    assert "loc. only" in capsys.readouterr().out
    assert described(read_manifest(boxed)) == described(records)  # what training reads is the same
    assert sum(r.localization_only for r in read_manifest(boxed, localization_only=True)) == 1149


def test_siim_keep_boxed_adds_localization_only_images_and_moves_no_other_image(shared_data):
    root = shared_data / "siim_covid_256"
    with open(root / "labels" / "image_labels.csv", newline="") as handle:
        rows = {r["image_id"]: r for r in csv.DictReader(handle)}
    boxed_other = {i for i, r in rows.items() if r["study_label"] in ("Indeterminate Appearance", "Atypical Appearance")
                   and int(r["n_opacity_boxes"]) > 0}
    for split in ({"split_by": "fold"}, {"split_by": "patient", "seed": 3}):
        plain = {r.image.stem: r for r in build_siim_covid_manifest(root, **split)}
        skipped: Counter[str] = Counter()
        kept = {r.image.stem: r for r in build_siim_covid_manifest(root, keep_boxed=True, skipped=skipped, **split)}
        assert set(kept) - set(plain) == boxed_other
        for image_id, record in plain.items():  # the labelled images keep their label and split
            assert (kept[image_id].label, kept[image_id].split, kept[image_id].localization_only) == \
                (record.label, record.split, False)
        extra = [kept[i] for i in boxed_other]
        assert all(r.label == "disease" and r.localization_only and len(r.boxes) for r in extra)
        assert len(boxed_other) == 1149  # 389 + 877 Atypical and Indeterminate images, minus 117 without boxes
        check_patient_disjoint(kept.values())
    assert "'Atypical Appearance' study without opacity boxes" in skipped


def test_localization_only_images_round_trip_and_stay_out_of_training_reads(tmp_path):
    records = [ManifestRecord(image=tmp_path / "a.png", label="disease", split="val", boxes=np.array([[1.0, 2, 5, 6]])),
               ManifestRecord(image=tmp_path / "b.png", label="disease", split="val", localization_only=True,
                              boxes=np.array([[1.0, 2, 5, 6], [7.0, 2, 9, 6]])),
               ManifestRecord(image=tmp_path / "c.png", label="healthy", split="val")]
    path = write_manifest(records, tmp_path / "m.csv")
    assert described(read_manifest(path, localization_only=True)) == described(records)
    assert [r.image.name for r in read_manifest(path)] == ["a.png", "c.png"]  # training, calibration, bundle
    plain = write_manifest([records[0], records[2]], tmp_path / "plain.csv")
    assert "localization_only" not in plain.read_text().splitlines()[0]  # today's manifests are unchanged
    text = path.read_text()
    (tmp_path / "bad.csv").write_text(text.replace("c.png,healthy,,val,,,,,,", "c.png,healthy,,val,,,,,,1"))
    with pytest.raises(DataError, match="only disease images can be localization_only"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "bad.csv").write_text(text.replace(",1\n", ",maybe\n", 1))
    with pytest.raises(DataError, match="localization_only 'maybe'"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "bad.csv").write_text("image,label,localization_only\nd.png,disease,1\n")
    with pytest.raises(DataError, match="neither boxes nor a mask"):
        read_manifest(tmp_path / "bad.csv", localization_only=True)
    (tmp_path / "only.csv").write_text("image,label,x,y,width,height,localization_only\nd.png,disease,1,1,2,2,1\n")
    with pytest.raises(DataError, match="no images besides localization-only ones"):
        read_manifest(tmp_path / "only.csv")


_HEADER = "image,label,patient_id,split,x,y,width,height\n"


@pytest.mark.parametrize(("rows", "words"), [
    (b"\xc5\x91\xff" + _HEADER.encode(), "m.csv: line 1 of the manifest is not UTF-8 text"),
    ((_HEADER + "a.png,healthy,p\xe9,val,,,,\n").encode("latin-1"), "m.csv: line 2 of the manifest is not UTF-8 text"),
    (b"image,image,label\na.png,b.png,healthy\n", "the column(s) ['image'] more than once"),
    ((_HEADER + "a.png,healthy,p1,val,,,,,x\n").encode(), "m.csv:2: the row has 9 fields but the header 8"),
    ((_HEADER + "a.png,healthy,p1,val,,,,\na.png,healthy,p1,train,,,,\n").encode(),
     "m.csv:3: image a.png appears in splits 'val' and 'train'"),
    ((_HEADER + "a.png,healthy,p1,val,,,,\na.png,healthy,p2,val,,,,\n").encode(),
     "m.csv:3: image a.png appears with patients 'p1' and 'p2'"),
    ((_HEADER + "a.png,sick,p1,val,,,,\n").encode(), "m.csv:2: label 'sick' is not one of"),
    ((_HEADER + "a.png,disease,p1,val,ten,1,2,3\n").encode(), "m.csv:2: column 'x' holds 'ten', not a number"),
    ((_HEADER + "a.png,disease,p1,val,1,,2,3\n").encode(), "m.csv:2: a box needs all of x, y, width, height"),
], ids=["binary", "latin-1", "repeated column", "extra field", "two splits", "two patients", "label", "box text",
        "partial box"])
def test_a_broken_manifest_is_refused_by_file_and_row(tmp_path, rows, words):
    """Text that is not UTF-8 raised UnicodeDecodeError; a repeated column, a row longer than the header and an image
    listed in two splits or for two patients were read silently (the last column won, the extra fields were dropped,
    the first split or patient was kept)."""
    path = tmp_path / "m.csv"
    path.write_bytes(rows)
    with pytest.raises(DataError, match=re.escape(words)):
        read_manifest(path)


def test_a_spreadsheets_utf8_csv_with_a_byte_order_mark_reads(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark, which named the first column '\\ufeffimage'."""
    path = tmp_path / "m.csv"
    path.write_bytes(("\ufeff" + _HEADER + "a.png,disease,p\u00e9,val,1,2,3,4\n").encode("utf-8"))
    (record,) = read_manifest(path)
    assert (record.image, record.patient_id, record.boxes.tolist()) == (tmp_path / "a.png", "p\u00e9", [[1, 2, 4, 6]])


# ------------------------------------------------------------------------------------------- folders


def test_folders_manifest_on_nih_layout_is_patient_disjoint(phantom_folders):
    root = phantom_folders.root
    records = build_folder_manifest(root, val_fraction=0.2, seed=1)
    assert len(records) == len(list(root.rglob("*.png")))
    for record in records:
        assert record.label == ("healthy" if record.image.parent.name == "0_normal" else "disease")
        assert record.patient_id == record.image.name.split("_")[0]
    check_patient_disjoint(records)
    patients = {r.patient_id for r in records}
    val_patients = {r.patient_id for r in records if r.split == "val"}
    assert 0.15 < len(val_patients) / len(patients) < 0.25
    # the folder's own train/valid split is not by patient: re-splitting by patient must move images
    moved = sum((r.image.parts[-3] == "valid") != (r.split == "val") for r in records)
    assert moved > 0
    explicit = build_folder_manifest(root, class_folders={"healthy": ["0_NORMAL"], "disease": ["1_abnormal"]},
                                     val_fraction=0.2, seed=1)
    assert [(r.image, r.label, r.split) for r in explicit] == [(r.image, r.label, r.split) for r in records]


def test_folder_rules_patient_pattern_and_command(tmp_path, phantom_folders, capsys):
    source = phantom_folders.images_of("train", "healthy")[:4]
    for png in source:
        (tmp_path / "site" / "pneumonia_negative").mkdir(parents=True, exist_ok=True)
        shutil.copy(png, tmp_path / "site" / "pneumonia_negative" / png.name)
    (tmp_path / "site" / "misc").mkdir()
    shutil.copy(source[0], tmp_path / "site" / "misc" / "x.png")
    assert folder_label("1_abnormal") == "disease" and folder_label("0_normal") == "healthy"
    assert folder_label("Abnormal") == "disease" and folder_label("train") is None
    assert folder_label("pneumonia_negative") == "disease", "keyword rules: disease words are checked first"
    mapping = {"healthy": ["pneumonia_negative"]}
    skipped: Counter[str] = Counter()
    records = build_folder_manifest(tmp_path, class_folders=mapping, patient_pattern=r"^(\d+)_\d+", skipped=skipped)
    assert [r.label for r in records] == ["healthy"] * 4 and skipped == {"not under a class folder": 1}
    assert [r.patient_id for r in records] == [p.name.split("_")[0] for p in source]
    stems = build_folder_manifest(tmp_path, class_folders=mapping, patient_pattern=None)
    assert [r.patient_id for r in stems] == [p.stem for p in source]
    with pytest.raises(ConfigurationError):
        build_folder_manifest(tmp_path, patient_pattern="(")

    out = tmp_path / "m.csv"
    assert main(["data", "manifest", "folders", str(tmp_path / "site"), "--out", str(out),
                 "--class", "healthy=pneumonia_negative"]) == 0
    assert "left out: 1 image(s): not under a class folder" in capsys.readouterr().out
    assert main(["data", "manifest", "folders", str(tmp_path / "site"), "--out", str(out), "--class", "sick=misc"]) == 2
    assert [r.label for r in read_manifest(out)] == ["healthy"] * 4


@pytest.mark.parametrize("box", [("nan", 10, 20, 30), (10, 10, "inf", 30), (10, 10, -5, 30), (10, 10, 20, 0)])
def test_label_table_boxes_without_area_or_finite_corners_are_refused_by_line(tmp_path, box):
    """A NaN or infinite coordinate or a negative width went from the RSNA, NIH and SIIM tables into the manifest
    (RSNA let NaN through its width check); training then refused the manifest, far from the table at fault."""
    from PilletGANLib.data.sources.nih import _read_bbox_list
    from PilletGANLib.data.sources.rsna import _read_boxes
    from PilletGANLib.data.sources.siim import _literal_boxes

    x, y, width, height = box
    rsna = tmp_path / "labels.csv"
    rsna.write_text(f"patientId,x,y,width,height,Target\np0,1,2,3,4,1\np1,{x},{y},{width},{height},1\n")
    nih = tmp_path / "BBox_List_2017.csv"
    nih.write_text(f"Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Pneumonia,{x},{y},{width},{height}\n")
    siim = f"[{{'x': {x!r}, 'y': {y}, 'width': {width!r}, 'height': {height}}}]".replace("'nan'", "float('nan')")
    expected = "a box needs finite coordinates and a positive width and height"
    with pytest.raises(DataError, match=rf"labels\.csv: line 3: {expected}"):
        _read_boxes(rsna)
    with pytest.raises(DataError, match=rf"BBox_List_2017\.csv: line 2: {expected}"):
        _read_bbox_list(nih, {"pneumonia"})
    if "float(" not in siim:  # SIIM's table holds literals only: float('nan') is refused as not one
        with pytest.raises(DataError, match=rf"train_image_level\.csv: line 7: .*{expected}"):
            _literal_boxes(siim.replace("'inf'", "1e999"), "line 7", tmp_path / "train_image_level.csv")
    with pytest.raises(DataError, match=r"RecursionError|MemoryError|SyntaxError"):
        _literal_boxes("[" * 100_000 + "]" * 100_000, "line 7", tmp_path / "train_image_level.csv")
