"""Build messy PACS-export trees for tests from the real radiographs in ``../shared/data/dicom``.

Every radiograph written here is a copy of a real file with new Study / Series / SOP Instance UIDs
(pixels untouched, so compressed syntaxes stay compressed). The other objects are made from the
real files too: a CT image (real pixels, CT header), a Basic Text SR, a truncated copy, a copy
without Pixel Data, plus a non-DICOM file, unreadable entries, a FIFO, a DICOMDIR written by
:class:`pydicom.fileset.FileSet` and a folder link that loops.

On "unreadable": ``chmod 000`` stops every user but root, and tests may run as root. The factory
therefore makes two entries: ``unreadable.dcm`` (a chmod 000 copy of a radiograph, which is
expected to be skipped only when the current user really cannot open it, decided by trying; as root
it is a radiograph to be found) and
``dangling.dcm`` (a symbolic link to a file that does not exist, unreadable for everyone). To exercise
the permission path as root, drop the capabilities that bypass file permissions:
``setpriv --bounding-set=-dac_override,-dac_read_search -- python -m pytest Testing/test_discovery.py``.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import BasicTextSRStorage, CTImageStorage, ExplicitVRLittleEndian, generate_uid

#: The real chest radiographs of ../shared/data/dicom.
REAL_FILES = (
    "RG1_UNCR.dcm",
    "RG1_J2KR.dcm",
    "RG1_J2KI.dcm",
    "SIIM_CR_JPEG_BASELINE.dcm",
    "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm",
    "NIH_DX_UNCOMPRESSED.dcm",
)


@dataclass
class ExportTree:
    """What a factory wrote: the radiographs to be found and what every other entry should be skipped as."""

    root: Path
    #: SOP Instance UID -> path of every radiograph discovery must select
    radiographs: dict[str, Path] = field(default_factory=dict)
    #: path -> expected skip kind (a :class:`PilletGANLib.dicom.discovery.SkipKind` value)
    expected_skips: dict[Path, str] = field(default_factory=dict)
    #: Study Instance UID -> Series Instance UIDs of the radiographs written
    studies: dict[str, set[str]] = field(default_factory=dict)

    def add_radiograph(self, ds: Dataset, path: Path) -> None:
        self.radiographs[str(ds.SOPInstanceUID)] = path
        self.studies.setdefault(str(ds.StudyInstanceUID), set()).add(str(ds.SeriesInstanceUID))


def read_real(dicom_dir: Path, name: str) -> Dataset:
    """A full (pixels included) read of one real file."""
    return pydicom.dcmread(dicom_dir / name)


def renew_uids(ds: Dataset, study_uid: str, series_uid: str, sop_uid: str | None = None) -> Dataset:
    """Give ``ds`` (in place) new Study / Series / SOP Instance UIDs; returns it."""
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def write_copy(dicom_dir: Path, name: str, target: Path, study_uid: str, series_uid: str,
               edit: Callable[[Dataset], None] | None = None) -> Dataset:
    """Copy a real file to ``target`` with new UIDs (and an optional header ``edit``); returns its dataset."""
    ds = renew_uids(read_real(dicom_dir, name), study_uid, series_uid)
    if edit is not None:
        edit(ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return ds


def write_ct_image(dicom_dir: Path, target: Path, study_uid: str) -> Dataset:
    """A CT Image Storage object with the real NIH pixels (16-bit, HU rescale) in a new series."""
    source = read_real(dicom_dir, "NIH_DX_UNCOMPRESSED.dcm")
    ds = _new_dataset(CTImageStorage, study_uid, source)
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = generate_uid()
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = source.Rows, source.Columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = (source.pixel_array.astype(np.uint16) * 8).tobytes()
    _save(ds, target)
    return ds


def write_sr_document(target: Path, study_uid: str, text: str = "No acute cardiopulmonary abnormality.") -> Dataset:
    """A Basic Text SR (a report: DICOM, but no image) in ``study_uid``."""
    ds = _new_dataset(BasicTextSRStorage, study_uid)
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "18782-3", "LN", "Radiology Study observation"
    ds.ConceptNameCodeSequence = [title]
    finding = Dataset()
    finding.RelationshipType = "CONTAINS"
    finding.ValueType = "TEXT"
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "121071", "DCM", "Finding"
    finding.ConceptNameCodeSequence = [name]
    finding.TextValue = text
    ds.ContentSequence = [finding]
    _save(ds, target)
    return ds


def write_truncated(source: Path, target: Path, fraction: float = 0.5) -> None:
    """The first ``fraction`` of ``source``'s bytes (an interrupted transfer)."""
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: int(len(data) * fraction)])


def write_without_pixel_data(dicom_dir: Path, name: str, target: Path, study_uid: str, series_uid: str) -> Dataset:
    """A copy of a real radiograph whose Pixel Data element was removed."""
    def drop_pixels(ds: Dataset) -> None:
        del ds.PixelData
    return write_copy(dicom_dir, name, target, study_uid, series_uid, edit=drop_pixels)


def write_not_dicom(target: Path) -> None:
    """A text file such as exports carry (a README, a CSV)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("Export notes: studies for the night shift, see PACS job 1234.\n", encoding="utf-8")


def make_unreadable(target: Path) -> bool:
    """``chmod 000`` on ``target``; returns whether the current user really cannot read it now (root can)."""
    target.chmod(0)
    try:
        with open(target, "rb") as handle:
            handle.read(1)
    except PermissionError:
        return True
    return False


def write_dangling_symlink(target: Path) -> None:
    """A symbolic link to a file that does not exist."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(target.parent / "no_such_file_anywhere.dcm")


def write_fifo(target: Path) -> None:
    """A named pipe: opening it would block, so discovery must not open it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(target)


def write_symlink_loop(folder: Path, name: str = "loop") -> Path:
    """``folder/name`` -> ``folder/..`` (a link to an ancestor: walking it naively never ends)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / name
    link.symlink_to(folder.parent, target_is_directory=True)
    return link


def write_dicomdir(folder: Path, datasets: list[Dataset]) -> tuple[Path, list[Path]]:
    """A DICOMDIR file-set in ``folder`` holding ``datasets`` (pydicom's layout: files without extension).

    Returns the DICOMDIR path and the paths of the referenced files, in the order given.
    """
    file_set = FileSet()
    instances = [file_set.add(ds) for ds in datasets]
    folder.mkdir(parents=True, exist_ok=True)
    file_set.write(folder)
    written = FileSet(folder / "DICOMDIR")
    paths = {inst.SOPInstanceUID: Path(inst.path) for inst in written}
    return folder / "DICOMDIR", [paths[inst.SOPInstanceUID] for inst in instances]


def dicomdir_ready(ds: Dataset, study_id: str = "1") -> Dataset:
    """Fill the attributes a DICOMDIR record needs (Study ID / Date / Time, Series / Instance Number) when empty."""
    for keyword, value in (("StudyID", study_id), ("StudyDate", "20200101"), ("StudyTime", "120000"),
                           ("SeriesNumber", 1), ("InstanceNumber", 1)):
        if not ds.get(keyword):
            setattr(ds, keyword, value)
    return ds


def build_mixed_export(root: Path, dicom_dir: Path) -> ExportTree:
    """A messy export of several studies and series, with everything discovery must survive.

    Radiographs (new UIDs): the 3 RG1 files (MONOCHROME1; uncompressed, JPEG 2000 lossless and lossy)
    in one study and two series, the 2 SIIM JPEG Baseline files in a second study, the NIH DX in a third;
    two of them without extension, one with ``.DCM``; two more (SIIM, NIH copies) only inside a DICOMDIR
    file-set. Skipped: the DICOMDIR itself, a CT image, an SR, a truncated file, a file without Pixel
    Data, a text file, a dangling link, a FIFO, a folder link loop, and a chmod 000 radiograph (skipped as
    unreadable when the user really cannot read it, else a radiograph to find).
    """
    tree = ExportTree(root=root)
    study_rg1, study_siim, study_nih = (generate_uid() for _ in range(3))
    series_rg1_a, series_rg1_b, series_siim, series_nih = (generate_uid() for _ in range(4))

    rg1 = root / "PAT_RG1" / "STUDY1"
    for name, target, series in (("RG1_UNCR.dcm", rg1 / "SER1" / "IM0001", series_rg1_a),
                                 ("RG1_J2KR.dcm", rg1 / "SER1" / "IM0002.dcm", series_rg1_a),
                                 ("RG1_J2KI.dcm", rg1 / "SER2" / "lossy.DCM", series_rg1_b)):
        tree.add_radiograph(write_copy(dicom_dir, name, target, study_rg1, series), target)
    for name, target in (("SIIM_CR_JPEG_BASELINE.dcm", root / "PAT_SIIM" / "a" / "image1.dcm"),
                         ("SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm", root / "PAT_SIIM" / "a" / "image2")):
        tree.add_radiograph(write_copy(dicom_dir, name, target, study_siim, series_siim), target)
    nih = root / "PAT_NIH" / "dx.dcm"
    tree.add_radiograph(write_copy(dicom_dir, "NIH_DX_UNCOMPRESSED.dcm", nih, study_nih, series_nih), nih)

    media = [dicomdir_ready(renew_uids(read_real(dicom_dir, name), generate_uid(), generate_uid()), str(i))
             for i, name in enumerate(("SIIM_CR_JPEG_BASELINE.dcm", "NIH_DX_UNCOMPRESSED.dcm"), start=1)]
    dicomdir, referenced = write_dicomdir(root / "MEDIA", media)
    tree.expected_skips[dicomdir] = "dicomdir"
    for ds, path in zip(media, referenced, strict=True):
        tree.add_radiograph(ds, path)

    other = root / "PAT_RG1" / "STUDY1"
    write_ct_image(dicom_dir, other / "CT" / "ct_slice", study_rg1)
    tree.expected_skips[other / "CT" / "ct_slice"] = "not_selected"
    write_sr_document(other / "SR" / "report.dcm", study_rg1)
    tree.expected_skips[other / "SR" / "report.dcm"] = "not_an_image"

    broken = root / "broken"
    write_truncated(dicom_dir / "RG1_UNCR.dcm", broken / "truncated.dcm")
    tree.expected_skips[broken / "truncated.dcm"] = "truncated"
    write_without_pixel_data(dicom_dir, "NIH_DX_UNCOMPRESSED.dcm", broken / "no_pixels.dcm", study_nih, generate_uid())
    tree.expected_skips[broken / "no_pixels.dcm"] = "no_pixel_data"
    write_not_dicom(broken / "README.txt")
    tree.expected_skips[broken / "README.txt"] = "not_dicom"
    write_dangling_symlink(broken / "dangling.dcm")
    tree.expected_skips[broken / "dangling.dcm"] = "unreadable"
    write_fifo(broken / "pipe")
    tree.expected_skips[broken / "pipe"] = "not_a_file"
    tree.expected_skips[write_symlink_loop(broken / "nested")] = "symlink_loop"
    unreadable = broken / "unreadable.dcm"
    ds = write_copy(dicom_dir, "SIIM_CR_JPEG_BASELINE.dcm", unreadable, generate_uid(), generate_uid())
    if make_unreadable(unreadable):
        tree.expected_skips[unreadable] = "unreadable"
    else:  # root reads it anyway: then it is a radiograph like any other
        tree.add_radiograph(ds, unreadable)
    return tree


def _today() -> str:
    return datetime.date.today().strftime("%Y%m%d")


def _new_dataset(sop_class: str, study_uid: str, patient_from: Dataset | None = None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = str(patient_from.get("PatientName", "")) if patient_from is not None else "Test^Patient"
    ds.PatientID = str(patient_from.get("PatientID", "")) if patient_from is not None else "TEST0001"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate, ds.StudyTime = _today(), "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
    ds.SeriesNumber, ds.InstanceNumber = 2, 1
    ds.Manufacturer = "PilletGAN test factory"
    ds.ContentDate, ds.ContentTime = _today(), "120000"
    return ds


def _save(ds: Dataset, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
