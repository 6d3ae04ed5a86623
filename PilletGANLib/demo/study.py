"""The demo's sample study on disk: the phantom as a DICOM CR file in a PACS-export folder tree, and its truth.

The DICOM file is a Computed Radiography Image Storage object (Explicit VR Little Endian) with UIDs, dates and
times derived from the seed, so the same seed always gives the same bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian
from scipy import ndimage

from ..dicom.uids import derived_uid
from ..outputs.atomic import atomic_path
from ..version import __version__
from .phantom import DEFAULT_SIZE, PhantomRadiograph, box_of, make_phantom_radiograph

__all__ = ["EXPORT_IMAGE_PATH", "SampleStudy", "phantom_dataset", "write_phantom_dicom", "write_sample_study"]

PATIENT_NAME = "PHANTOM^PILLETGAN"
PATIENT_ID = "PHANTOM-0001"
STUDY_DESCRIPTION = "PilletGAN demo: synthetic chest radiograph phantom"
SERIES_DESCRIPTION = "Chest PA (synthetic phantom with a known opacity)"
#: Fixed acquisition date and time: the files are reproducible byte for byte.
STUDY_DATE, STUDY_TIME = "20250101", "093000"


# -- DICOM ------------------------------------------------------------------------------------------
def _uids(meta: dict[str, Any]) -> dict[str, str]:
    """Study, series and SOP Instance UIDs derived from what determines the pixels: the same seed, size and opacity
    give the same UIDs, a different phantom gets different ones."""
    key = [str(meta[k]) for k in ("seed", "rows", "columns", "opacity")]
    return {name: derived_uid("demo-phantom", *key, name) for name in ("study", "series", "instance")}


def phantom_dataset(phantom: PhantomRadiograph) -> Dataset:
    """The phantom as a DICOM Computed Radiography Image Storage dataset (MONOCHROME2, Explicit VR Little Endian)."""
    pixels, _, meta = phantom
    uids = _uids(meta)
    spacing = f"{meta['pixel_spacing_mm']:.6g}"
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    file_meta.MediaStorageSOPInstanceUID = uids["instance"]
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = file_meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = uids["instance"]
    ds.InstanceCreationDate, ds.InstanceCreationTime = STUDY_DATE, STUDY_TIME
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = STUDY_TIME
    ds.AccessionNumber = "PGDEMO0001"
    ds.Modality = "CR"
    ds.Manufacturer = "PilletGAN project"
    ds.InstitutionName = "PilletGAN demo (synthetic)"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.ManufacturerModelName = "PilletGANLib.demo.phantom"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic phantom: no patient"
    ds.BodyPartExamined = "CHEST"
    ds.SoftwareVersions = f"PilletGAN {__version__}"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = meta["photometric_interpretation"]
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = meta["bits_stored"]
    ds.HighBit = meta["bits_stored"] - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = str(1 << (meta["bits_stored"] - 1))
    ds.WindowWidth = str(1 << meta["bits_stored"])
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def write_phantom_dicom(path: str | os.PathLike, phantom: PhantomRadiograph) -> Path:
    """Write the phantom as a DICOM CR file at ``path`` (written to a temporary name, then renamed)."""
    path = Path(path)
    dataset = phantom_dataset(phantom)
    with atomic_path(path) as temporary:
        dataset.save_as(temporary, enforce_file_format=True)
    return path


# -- the sample study -------------------------------------------------------------------------------
#: Where the image sits inside the export: patient / study / series folders, as PACS export tools lay them out.
EXPORT_IMAGE_PATH = Path(PATIENT_ID, f"{STUDY_DATE}_CHEST_PA", "SE0001_CR", "IM000001.dcm")


@dataclass(frozen=True)
class SampleStudy:
    """The files of the sample study: the export folder (the DICOM file only) and the ground truth beside it."""

    export_dir: Path
    dicom_path: Path
    truth_mask_path: Path
    truth_json_path: Path
    phantom: PhantomRadiograph
    truth: dict[str, Any]


def _truth_record(phantom: PhantomRadiograph, dicom_path: Path, export_dir: Path) -> dict[str, Any]:
    _, mask, meta = phantom
    uids = _uids(meta)
    spacing = meta["pixel_spacing_mm"]
    box = meta["opacity_box"]
    masks = meta["masks"]
    return {
        "description": "Ground truth of the PilletGAN demo phantom: a synthetic chest radiograph made by the project "
                       "(no patient, no copied image) with one known pneumonia-like opacity.",
        "image": dicom_path.relative_to(export_dir).as_posix(),
        "sop_instance_uid": uids["instance"],
        "series_instance_uid": uids["series"],
        "study_instance_uid": uids["study"],
        "seed": meta["seed"],
        "rows": meta["rows"],
        "columns": meta["columns"],
        "pixel_spacing_mm": [spacing, spacing],
        "photometric_interpretation": meta["photometric_interpretation"],
        "opacity": {
            "present": meta["opacity"],
            "lung": meta["opacity_side"],
            "box": None if box is None else dict(zip(("x1", "y1", "x2", "y2"), box, strict=True)),
            "box_mm": None if box is None else [round(v * spacing, 3) for v in box],
            "area_pixels": meta["opacity_area_pixels"],
            "centroid_xy": None if box is None else [float(c) for c in ndimage.center_of_mass(mask)[::-1]],
            "mask": "truth_mask.png",
        },
        "lungs": {side: dict(zip(("x1", "y1", "x2", "y2"), box_of(masks[f"{side}_lung"]), strict=True))
                  for side in ("right", "left")},
        "generator": "PilletGANLib.demo.phantom.make_phantom_radiograph",
        "pilletgan_version": __version__,
    }


def write_sample_study(export_dir: str | os.PathLike, truth_dir: str | os.PathLike,
                       size: tuple[int, int] = DEFAULT_SIZE, opacity: bool = True, seed: int = 0) -> SampleStudy:
    """Build the demo's sample study.

    ``export_dir`` gets the phantom as a DICOM CR file in a patient/study/series folder tree
    (:data:`EXPORT_IMAGE_PATH`), nothing else, so it can be given to ``pilletgan batch`` as is.
    ``truth_dir`` gets ``truth_mask.png`` (the opacity, 255 inside, same size as the image) and
    ``truth.json`` (UIDs, opacity box in pixels and millimetres, lung boxes).
    """
    export_dir, truth_dir = Path(export_dir), Path(truth_dir)
    phantom = make_phantom_radiograph(size=size, opacity=opacity, seed=seed)
    dicom_path = export_dir / EXPORT_IMAGE_PATH
    dicom_path.parent.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    write_phantom_dicom(dicom_path, phantom)
    mask_path = truth_dir / "truth_mask.png"
    with atomic_path(mask_path) as temporary:
        Image.fromarray(phantom.opacity_mask.astype(np.uint8) * 255).save(temporary, format="PNG")
    truth = _truth_record(phantom, dicom_path, export_dir)
    json_path = truth_dir / "truth.json"
    with atomic_path(json_path) as temporary:
        temporary.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return SampleStudy(export_dir, dicom_path, mask_path, json_path, phantom, truth)
