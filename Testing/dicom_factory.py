"""DICOM test inputs the project makes itself, and messy PACS-export trees built from them.

The sample radiographs (:func:`write_sample_dicoms`) are the demo's chest phantom
(:mod:`PilletGANLib.demo.phantom`) written with the traits the reader must handle, each compressed by
pydicom's own encoders: MONOCHROME1 with a VOI window and 15 of 16 bits stored, the same pixels as JPEG 2000
lossless and lossy, JPEG Baseline (8 bit, through Pillow), the same JPEG labelled MONOCHROME1 in its header
only (the pixels say MONOCHROME2), an 8-bit DX Secondary Capture in Implicit VR with the broken header values
of a real export, JPEG-LS, RLE, and a signed 16-bit image with a Modality LUT and a VOI LUT sequence. They stand
in for the real files of ``../shared/data/dicom`` (:data:`REAL_FILES`) wherever a test checks the reader, the
SEG writer or the batch rather than real anatomy, so those tests run on every machine.

Every other builder copies one of these files with new Study / Series / SOP Instance UIDs (pixels untouched,
so compressed syntaxes stay compressed) or makes the other objects an export holds: a CT image, a Basic Text
SR, a truncated copy, a copy without Pixel Data, plus a non-DICOM file, unreadable entries, a FIFO, a DICOMDIR
written by :class:`pydicom.fileset.FileSet` and a folder link that loops. They take the folder of the sample
files (or of the real ones: the names differ, the builders take them as arguments).

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
import functools
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet
from pydicom.uid import (
    JPEG2000,
    BasicTextSRStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from PilletGANLib.demo.phantom import FIELD_OF_VIEW_MM, PhantomRadiograph, make_phantom_radiograph
from PilletGANLib.demo.study import phantom_dataset

#: The real chest radiographs of ../shared/data/dicom.
REAL_FILES = (
    "RG1_UNCR.dcm",
    "RG1_J2KR.dcm",
    "RG1_J2KI.dcm",
    "SIIM_CR_JPEG_BASELINE.dcm",
    "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm",
    "NIH_DX_UNCOMPRESSED.dcm",
)

#: The project's sample radiographs (:func:`write_sample_dicoms`), named by the trait each one carries.
MONO1_UNCOMPRESSED = "CR_MONO1_UNCOMPRESSED.dcm"
MONO1_J2K_LOSSLESS = "CR_MONO1_J2K_LOSSLESS.dcm"
MONO1_J2K_LOSSY = "CR_MONO1_J2K_LOSSY.dcm"
JPEG_BASELINE = "CR_JPEG_BASELINE.dcm"
JPEG_HEADER_MONO1 = "CR_JPEG_BASELINE_HEADER_MONO1.dcm"
DX_8BIT = "DX_SC_8BIT_IMPLICIT.dcm"
JPEG_LS = "DX_JPEGLS_LOSSLESS.dcm"
RLE = "CR_RLE_LOSSLESS.dcm"
VOI_LUT_16BIT = "DX_16BIT_VOI_LUT.dcm"
SAMPLE_FILES = (MONO1_UNCOMPRESSED, MONO1_J2K_LOSSLESS, MONO1_J2K_LOSSY, JPEG_BASELINE, JPEG_HEADER_MONO1, DX_8BIT,
                JPEG_LS, RLE, VOI_LUT_16BIT)
#: The files with their own SOP Instance UID (the header-only MONOCHROME1 edit keeps its source's).
DISTINCT_SAMPLE_FILES = tuple(name for name in SAMPLE_FILES if name != JPEG_HEADER_MONO1)
#: Rows x columns of the MONOCHROME1 samples (not square, so a transposition shows) and of the others.
MONO1_SHAPE = (320, 288)
SAMPLE_SHAPE = (256, 256)
#: Window of the MONOCHROME1 samples (15 bits stored), and the Pixel Spacing of the JPEG samples in mm.
MONO1_WINDOW = (15000, 30000)
JPEG_SPACING_MM = FIELD_OF_VIEW_MM / SAMPLE_SHAPE[0]


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


# -- the sample radiographs ------------------------------------------------------------------------------
def _sample_uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=["PilletGAN test sample", *parts]))


@functools.lru_cache(maxsize=16)
def _phantom(shape: tuple[int, int], seed: int) -> PhantomRadiograph:
    """The demo phantom (12 bits stored, MONOCHROME2) of ``shape`` with an opacity (made once per process)."""
    return make_phantom_radiograph(size=shape, opacity=True, seed=seed)


def _phantom_pixels(shape: tuple[int, int], seed: int) -> np.ndarray:
    return _phantom(shape, seed).pixels


def _mono1_dataset(name: str) -> Dataset:
    """A CR like the RG1 test image: MONOCHROME1, 15 of 16 bits, a VOI window, Pixel Spacing 0\\0 (unknown)."""
    phantom = _phantom(MONO1_SHAPE, 11)
    ds = phantom_dataset(phantom)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _sample_uid(name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _sample_uid("mono1 study"), _sample_uid("mono1 series")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsStored, ds.HighBit = 15, 14
    ds.WindowCenter, ds.WindowWidth = (str(v) for v in MONO1_WINDOW)
    ds.PixelSpacing = ["0", "0"]
    del ds.ImagerPixelSpacing
    ds.PixelData = (32767 - phantom.pixels.astype(np.uint16) * 8).astype("<u2").tobytes()
    return ds


def _jpeg_dataset(name: str, sop_uid: str, photometric: str) -> Dataset:
    """A CR Secondary Capture like the SIIM test image: 8-bit JPEG Baseline (through Pillow) with its header."""
    pixels = (_phantom_pixels(SAMPLE_SHAPE, seed=12) >> 4).astype(np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="JPEG", quality=92)
    ds = _minimal_image_dataset(SecondaryCaptureImageStorage, JPEGBaseline8Bit, sop_uid, "jpeg", "CR")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", ""
    ds.ConversionType = "WSD"
    ds.SeriesDescription = "view: PA"
    ds.PatientBirthDate, ds.PatientSex = "", "M"
    _invalid_value(ds, "PatientAge", "62")  # no unit, as in the real file
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", "PA"
    ds.SeriesNumber, ds.InstanceNumber, ds.PatientOrientation = "1", "1", ""
    _pixel_module(ds, SAMPLE_SHAPE, 8, 8, photometric)
    ds.PixelSpacing = [f"{JPEG_SPACING_MM:.6g}"] * 2
    ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
    ds.PixelData = encapsulate([encoded.getvalue()])
    ds["PixelData"].VR = "OB"
    return ds


def _dx_dataset(name: str) -> Dataset:
    """A DX Secondary Capture like the NIH test image: 8 bits, Implicit VR, Patient's Age '81' without its unit,
    no Birth Date, Study Date, Patient Orientation, Body Part or View Position."""
    ds = _minimal_image_dataset(SecondaryCaptureImageStorage, ImplicitVRLittleEndian, _sample_uid(name), "dx", "DX")
    ds.StudyDescription = "No Finding"
    ds.PatientSex = "M"
    _invalid_value(ds, "PatientAge", "81")
    _pixel_module(ds, SAMPLE_SHAPE, 8, 8, "MONOCHROME2")
    ds.PixelData = (_phantom_pixels(SAMPLE_SHAPE, seed=13) >> 4).astype(np.uint8).tobytes()
    return ds


def _compressed_phantom(name: str, syntax: str, seed: int, modality: str) -> Dataset:
    """The phantom's own CR dataset (12 of 16 bits, MONOCHROME2), compressed by pydicom's encoder for ``syntax``."""
    ds = phantom_dataset(_phantom(SAMPLE_SHAPE, seed))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _sample_uid(name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _sample_uid(name, "study"), _sample_uid(name, "series")
    ds.Modality = modality
    ds.compress(syntax)
    return ds


def _voi_lut_dataset(name: str) -> Dataset:
    """16 of 16 bits stored, a Modality LUT (rescale) and a VOI LUT Sequence (a square-root curve) to apply."""
    ds = phantom_dataset(_phantom(SAMPLE_SHAPE, 14))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _sample_uid(name)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _sample_uid(name, "study"), _sample_uid(name, "series")
    ds.Modality = "DX"
    pixels = np.frombuffer(ds.PixelData, dtype="<u2").reshape(SAMPLE_SHAPE).astype(np.uint16) * 16
    ds.BitsStored, ds.HighBit = 16, 15
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    del ds.WindowCenter, ds.WindowWidth
    lut = Dataset()
    lut.LUTDescriptor = [0, 0, 16]  # 65536 entries from stored value 0, 16 bits each
    lut.LUTExplanation = "square root"
    lut.add_new(0x00283006, "OW", np.round(np.sqrt(np.arange(65536) / 65535.0) * 65535).astype("<u2").tobytes())
    ds.VOILUTSequence = [lut]
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def write_sample_dicoms(folder: Path) -> dict[str, Path]:
    """Write every sample radiograph of :data:`SAMPLE_FILES` into ``folder``; returns name -> path.

    The same call always writes the same pixels and UIDs. The MONOCHROME1 samples hold one image
    uncompressed and as JPEG 2000 lossless (decoding to the same values) and lossy.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mono1 = _mono1_dataset(MONO1_UNCOMPRESSED)
    jpeg_uid = _sample_uid(JPEG_BASELINE)
    datasets = {MONO1_UNCOMPRESSED: mono1, JPEG_BASELINE: _jpeg_dataset(JPEG_BASELINE, jpeg_uid, "MONOCHROME2"),
                JPEG_HEADER_MONO1: _jpeg_dataset(JPEG_HEADER_MONO1, jpeg_uid, "MONOCHROME1"),
                DX_8BIT: _dx_dataset(DX_8BIT), JPEG_LS: _compressed_phantom(JPEG_LS, JPEGLSLossless, 15, "DX"),
                RLE: _compressed_phantom(RLE, RLELossless, 16, "CR"), VOI_LUT_16BIT: _voi_lut_dataset(VOI_LUT_16BIT)}
    for name, syntax, options in ((MONO1_J2K_LOSSLESS, JPEG2000Lossless, {}), (MONO1_J2K_LOSSY, JPEG2000, {"j2k_cr": [15]})):
        compressed = _mono1_dataset(name)
        compressed.compress(syntax, **options)
        if syntax == JPEG2000:
            compressed.LossyImageCompression = "01"
        datasets[name] = compressed
    paths = {}
    for name in SAMPLE_FILES:
        paths[name] = folder / name
        _save(datasets[name], paths[name])
    return paths


def _minimal_image_dataset(sop_class: str, syntax: str, sop_uid: str, key: str, modality: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality = modality
    ds.PatientName = ds.PatientID = f"Phantom-{key}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _sample_uid(key, "study"), _sample_uid(key, "series")
    return ds


def _invalid_value(ds: Dataset, keyword: str, value: str) -> None:
    """Set a value that breaks its VR, as real exports do (pydicom warns about it; the test means it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        setattr(ds, keyword, value)


def _pixel_module(ds: Dataset, shape: tuple[int, int], allocated: int, stored: int, photometric: str) -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, stored, stored - 1, 0


# -- copies and other objects ------------------------------------------------------------------------------
def write_variant(dicom_dir: Path, target: Path, **changes: object) -> Path:
    """The 8-bit MONOCHROME2 sample (stored 0-246, no LUT or window) with ``changes`` to its header, written to
    ``target`` in Explicit VR Little Endian (each value is read back with the VR it was written as)."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.save_as(target, enforce_file_format=False)
    return target


def read_dataset(dicom_dir: Path, name: str) -> Dataset:
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
    ds = renew_uids(read_dataset(dicom_dir, name), study_uid, series_uid)
    if edit is not None:
        edit(ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return ds


def write_ct_image(dicom_dir: Path, target: Path, study_uid: str, source: str = DX_8BIT) -> Dataset:
    """A CT Image Storage object with the pixels of ``dicom_dir / source`` (16-bit, HU rescale) in a new series."""
    source = read_dataset(dicom_dir, source)
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

    ``dicom_dir`` holds the sample radiographs (:func:`write_sample_dicoms`). Radiographs (new UIDs): the 3
    MONOCHROME1 files (uncompressed, JPEG 2000 lossless and lossy) in one study and two series, the 2 JPEG
    Baseline files in a second study, the 8-bit DX in a third; two of them without extension, one with ``.DCM``;
    two more (JPEG, DX copies) only inside a DICOMDIR file-set. Skipped: the DICOMDIR itself, a CT image, an
    SR, a truncated file, a file without Pixel Data, a text file, a dangling link, a FIFO, a folder link loop,
    and a chmod 000 radiograph (skipped as unreadable when the user really cannot read it, else a radiograph
    to find).
    """
    tree = ExportTree(root=root)
    study_rg1, study_siim, study_nih = (generate_uid() for _ in range(3))
    series_rg1_a, series_rg1_b, series_siim, series_nih = (generate_uid() for _ in range(4))

    rg1 = root / "PAT_RG1" / "STUDY1"
    for name, target, series in ((MONO1_UNCOMPRESSED, rg1 / "SER1" / "IM0001", series_rg1_a),
                                 (MONO1_J2K_LOSSLESS, rg1 / "SER1" / "IM0002.dcm", series_rg1_a),
                                 (MONO1_J2K_LOSSY, rg1 / "SER2" / "lossy.DCM", series_rg1_b)):
        tree.add_radiograph(write_copy(dicom_dir, name, target, study_rg1, series), target)
    for name, target in ((JPEG_BASELINE, root / "PAT_SIIM" / "a" / "image1.dcm"),
                         (JPEG_HEADER_MONO1, root / "PAT_SIIM" / "a" / "image2")):
        tree.add_radiograph(write_copy(dicom_dir, name, target, study_siim, series_siim), target)
    nih = root / "PAT_NIH" / "dx.dcm"
    tree.add_radiograph(write_copy(dicom_dir, DX_8BIT, nih, study_nih, series_nih), nih)

    media = [dicomdir_ready(renew_uids(read_dataset(dicom_dir, name), generate_uid(), generate_uid()), str(i))
             for i, name in enumerate((JPEG_BASELINE, DX_8BIT), start=1)]
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
    write_truncated(dicom_dir / MONO1_UNCOMPRESSED, broken / "truncated.dcm")
    tree.expected_skips[broken / "truncated.dcm"] = "truncated"
    write_without_pixel_data(dicom_dir, DX_8BIT, broken / "no_pixels.dcm", study_nih, generate_uid())
    tree.expected_skips[broken / "no_pixels.dcm"] = "no_pixel_data"
    write_not_dicom(broken / "README.txt")
    tree.expected_skips[broken / "README.txt"] = "not_dicom"
    write_dangling_symlink(broken / "dangling.dcm")
    tree.expected_skips[broken / "dangling.dcm"] = "unreadable"
    write_fifo(broken / "pipe")
    tree.expected_skips[broken / "pipe"] = "not_a_file"
    tree.expected_skips[write_symlink_loop(broken / "nested")] = "symlink_loop"
    unreadable = broken / "unreadable.dcm"
    ds = write_copy(dicom_dir, JPEG_BASELINE, unreadable, generate_uid(), generate_uid())
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
