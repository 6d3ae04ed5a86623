"""DICOM SEG output: validation with dciodvfy, read-back with highdicom, header repair, UIDs and safe paths.

The SEGs are written for the project's sample radiographs (``dicom_factory``: every encoding, and headers that
are incomplete or invalid in the ways real exports are) and, where ../shared/data exists, the six real ones.
"""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicom_factory import (
    DX_8BIT,
    JPEG_BASELINE,
    MONO1_J2K_LOSSLESS,
    MONO1_J2K_LOSSY,
    MONO1_UNCOMPRESSED,
    REAL_FILES,
    SAMPLE_FILES,
    SAMPLE_SHAPE,
)
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from PilletGANLib.dicom.attributes import repair_source_header
from PilletGANLib.dicom.codes import LUNG, MORPHOLOGICALLY_ABNORMAL_STRUCTURE, OPACITY, PNEUMONIA
from PilletGANLib.dicom.seg import (
    Algorithm,
    seg_instance_uid,
    seg_series_uid,
    write_heatmap_seg,
    write_lesion_seg,
)
from PilletGANLib.dicom.uids import derived_uid, is_valid_uid, safe_uid_name, uid_path
from PilletGANLib.errors import CorruptFileError, OutputError
from PilletGANLib.version import __version__

#: the tests set invalid values on purpose; pydicom warns about each one
pytestmark = pytest.mark.filterwarnings("ignore:(Invalid value for VR|The value length):UserWarning")

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
SAFE_NAME = re.compile(r"^([0-9]+(\.[0-9]+)*|h[0-9a-f]{40})$")


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy (Debian dicom3tools) prints for ``path``; skips when it is missing."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools: apt-get install dicom3tools); "
                    ".ci/run installs it")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def rectangle_mask(rows: int, cols: int) -> np.ndarray:
    mask = np.zeros((rows, cols), dtype=bool)
    mask[rows // 4: rows // 2, cols // 5: cols // 2] = True
    mask[rows - 3:, cols - 2:] = True  # touches the last row and column: catches transposed or cropped grids
    return mask


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module", params=SAMPLE_FILES)
def written_seg(request, dicom_dir, tmp_path_factory):
    """(source path, source header, mask, SEG path, source hash before writing) for one sample file."""
    source = dicom_dir / request.param
    before = sha256(source)
    header = pydicom.dcmread(source, stop_before_pixels=True)
    mask = rectangle_mask(int(header.Rows), int(header.Columns))
    out_dir = uid_path(tmp_path_factory.mktemp("seg"), header.StudyInstanceUID, header.SeriesInstanceUID,
                       header.SOPInstanceUID)
    seg_path = write_lesion_seg(source, mask, out_dir / "lesion_seg.dcm")
    return source, header, mask, seg_path, before


@pytest.mark.slow
def test_lesion_seg_passes_dciodvfy(written_seg):
    *_, seg_path, _ = written_seg
    assert dciodvfy_errors(seg_path) == []


def test_lesion_seg_reads_back_with_highdicom(written_seg):
    _, header, mask, seg_path, _ = written_seg
    seg = hd.seg.segread(seg_path)
    assert seg.SOPClassUID == SEGMENTATION_STORAGE
    assert seg.SegmentationType == "BINARY"
    assert (seg.Rows, seg.Columns) == (header.Rows, header.Columns)
    assert seg.get_source_image_uids() == [(header.StudyInstanceUID, header.SeriesInstanceUID, header.SOPInstanceUID)]
    assert seg.StudyInstanceUID == header.StudyInstanceUID
    assert seg.PatientID == header.PatientID
    pixels = seg.get_pixels_by_source_instance([header.SOPInstanceUID])
    assert pixels.shape == (1, header.Rows, header.Columns, 1)
    np.testing.assert_array_equal(pixels[0, :, :, 0].astype(bool), mask)

    description = seg.get_segment_description(1)
    assert description.segment_label == "Lesion"
    assert description.segmented_property_category == MORPHOLOGICALLY_ABNORMAL_STRUCTURE
    assert description.segmented_property_type == OPACITY
    assert description.anatomic_regions == [LUNG]
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    algorithm = description.algorithm_identification[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("PilletGAN", __version__)
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"  # DCM Artificial Intelligence


def test_seg_uids_are_derived_from_the_source(written_seg):
    _, header, _, seg_path, _ = written_seg
    seg = pydicom.dcmread(seg_path)
    assert seg.SeriesInstanceUID == seg_series_uid(header.SeriesInstanceUID, Algorithm())
    assert seg.SOPInstanceUID == seg_instance_uid(header.SOPInstanceUID, Algorithm())
    assert is_valid_uid(seg.SeriesInstanceUID) and is_valid_uid(seg.SOPInstanceUID)


def test_source_file_is_not_modified(written_seg):
    source, *_, before = written_seg
    assert sha256(source) == before


def test_output_path_is_built_from_uids_only(written_seg):
    _, header, _, seg_path, _ = written_seg
    uid_parts = seg_path.parent.parts[-3:]
    assert all(SAFE_NAME.match(part) for part in uid_parts)
    assert seg_path.name == "lesion_seg.dcm"
    for text in (str(header.get("PatientName", "")), str(header.get("PatientID", ""))):
        if text:
            assert text not in str(seg_path)
    assert [p.name for p in seg_path.parent.iterdir()] == ["lesion_seg.dcm"]  # no temporary file left behind


def test_real_files_give_valid_segs(real_dicom_dir, tmp_path):
    """Each real radiograph (the headers of real modalities and exports) gives a SEG that validates and reads back."""
    for name in REAL_FILES:
        header = pydicom.dcmread(real_dicom_dir / name, stop_before_pixels=True)
        mask = rectangle_mask(int(header.Rows), int(header.Columns))
        path = write_lesion_seg(real_dicom_dir / name, mask, tmp_path / f"{name}.seg.dcm")
        assert dciodvfy_errors(path) == [], name
        pixels = hd.seg.segread(path).get_pixels_by_source_instance([header.SOPInstanceUID])
        np.testing.assert_array_equal(pixels[0, :, :, 0].astype(bool), mask)


def test_segs_of_one_source_series_share_one_seg_series(dicom_dir, tmp_path):
    uids = []
    for name in (MONO1_UNCOMPRESSED, MONO1_J2K_LOSSLESS, MONO1_J2K_LOSSY):  # one source series, three instances
        header = pydicom.dcmread(dicom_dir / name, stop_before_pixels=True)
        path = write_lesion_seg(dicom_dir / name, rectangle_mask(header.Rows, header.Columns), tmp_path / f"{name}.seg")
        seg = pydicom.dcmread(path, stop_before_pixels=True)
        uids.append((seg.SeriesInstanceUID, seg.SOPInstanceUID))
    assert len({series for series, _ in uids}) == 1
    assert len({instance for _, instance in uids}) == 3
    newer = seg_series_uid(pydicom.dcmread(dicom_dir / MONO1_UNCOMPRESSED, stop_before_pixels=True).SeriesInstanceUID,
                           Algorithm(version="999"))
    assert newer != uids[0][0]  # another algorithm version starts another SEG series


def test_heatmap_seg_is_fractional_validates_and_round_trips(dicom_dir, tmp_path):
    source = dicom_dir / DX_8BIT
    header = pydicom.dcmread(source, stop_before_pixels=True)
    rows, cols = header.Rows, header.Columns
    heatmap = np.outer(np.linspace(0, 1, rows), np.linspace(1, 0, cols)).astype(np.float32)
    path = write_heatmap_seg(source, heatmap, tmp_path / "heat.dcm")
    seg = hd.seg.segread(path)
    assert seg.SegmentationType == "FRACTIONAL"
    assert seg.SegmentationFractionalType == "PROBABILITY"
    assert seg.get_source_image_uids()[0][2] == header.SOPInstanceUID
    values = seg.get_pixels_by_source_instance([header.SOPInstanceUID], rescale_fractional=True)[0, :, :, 0]
    assert values.shape == (rows, cols)
    assert np.abs(values - heatmap).max() <= 0.5 / 255 + 1e-6
    lesion_series = seg_series_uid(header.SeriesInstanceUID, Algorithm())
    assert seg.SeriesInstanceUID == seg_series_uid(header.SeriesInstanceUID, Algorithm(), "heatmap") != lesion_series
    assert dciodvfy_errors(path) == []


def test_empty_mask_gives_one_all_zero_frame(dicom_dir, tmp_path):
    source = dicom_dir / JPEG_BASELINE
    header = pydicom.dcmread(source, stop_before_pixels=True)
    path = write_lesion_seg(source, np.zeros((header.Rows, header.Columns), bool), tmp_path / "empty.dcm")
    seg = hd.seg.segread(path)
    assert seg.NumberOfFrames == 1
    assert not seg.get_pixels_by_source_instance([header.SOPInstanceUID]).any()
    assert dciodvfy_errors(path) == []


def test_options_reach_the_seg(dicom_dir, tmp_path):
    source = dicom_dir / JPEG_BASELINE
    header = pydicom.dcmread(source, stop_before_pixels=True)
    algorithm = Algorithm(name="PilletGAN-LTA", version="2.0", parameters={"threshold": "0.42", "model_sha256": "ab" * 32})
    path = write_lesion_seg(source, rectangle_mask(header.Rows, header.Columns), tmp_path / "x.dcm", algorithm=algorithm,
                            property_type=PNEUMONIA, series_number=77, series_description="test series",
                            sop_instance_uid="1.2.3.4.5")
    seg = hd.seg.segread(path)
    assert (seg.SeriesNumber, seg.SeriesDescription, seg.SOPInstanceUID) == (77, "test series", "1.2.3.4.5")
    description = seg.get_segment_description(1)
    assert description.segmented_property_type == PNEUMONIA
    identification = description.algorithm_identification
    assert (identification.name, identification.version) == ("PilletGAN-LTA", "2.0")
    assert identification.parameters == {"threshold": "0.42", "model_sha256": "ab" * 32}
    assert dciodvfy_errors(path) == []


def test_nih_header_is_repaired_in_the_seg(dicom_dir, tmp_path):
    """The DX sample (an NIH-like export): Patient's Age '81' without unit, no Birth Date, Patient Orientation,
    Study Date."""
    source = dicom_dir / DX_8BIT
    header = pydicom.dcmread(source, stop_before_pixels=True)
    assert header.PatientAge == "81" and "PatientBirthDate" not in header  # the sample is as described
    seg = pydicom.dcmread(write_lesion_seg(source, rectangle_mask(header.Rows, header.Columns), tmp_path / "nih.dcm"))
    assert seg.PatientAge == "081Y"
    for keyword in ("PatientBirthDate", "PatientOrientation", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                    "ReferringPhysicianName"):
        assert keyword in seg and not seg[keyword].value


def test_pixel_spacing_is_not_copied_and_orientation_is(dicom_dir, tmp_path):
    """The MONOCHROME1 sample has Pixel Spacing 0\\0 (invalid); the SEG takes its spacing from the image it
    references."""
    source = dicom_dir / MONO1_UNCOMPRESSED
    header = pydicom.dcmread(source, stop_before_pixels=True)
    assert [float(v) for v in header.PixelSpacing] == [0.0, 0.0]
    seg = pydicom.dcmread(write_lesion_seg(source, rectangle_mask(header.Rows, header.Columns), tmp_path / "rg1.dcm"))
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]
    assert list(seg.PatientOrientation) == ["L", "F"]  # valid values are kept


def broken_header(dicom_dir: Path, tmp_path: Path) -> Dataset:
    """The DX sample (pixels included) with many kinds of invalid header values, written and read back."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.PatientName = "A^B^C^D^E^F^G"  # 7 components: invalid, identifying -> emptied
    ds.PatientID = "X" * 70  # longer than LO: identifying -> emptied, never shortened
    ds.PatientSex = "m"  # -> "M"
    ds.PatientBirthDate = "1940-03-05"  # -> 19400305
    ds.StudyDate = "20230231"  # not a calendar date -> emptied
    ds.StudyTime = "12:30:15"  # -> 123015
    ds.StudyDescription = "Chest\tPA " + "x" * 80  # control character and too long: descriptive -> cleaned, shortened
    ds[0x00101030] = RawDataElement(Tag(0x00101030), "DS", 5, b"heavy", 0, True, True)  # DS "heavy" -> removed
    ds.ReferringPhysicianName = "M\u00fcller^J\u00f6rg"  # non-ASCII without a character set -> UTF-8 declared
    ds.Manufacturer = "ACME"  # equipment is copied as contributing equipment ...
    ds.InstitutionName = "I" * 70  # ... with its descriptive texts shortened
    ds.FrameOfReferenceUID = "1.2.03.x"  # invalid UID, Type 3 here -> removed
    ds.PatientOrientation = ["Q", "Z"]  # not anatomical -> emptied
    procedure = Dataset()
    procedure.CodeValue, procedure.CodingSchemeDesignator, procedure.CodeMeaning = "X1", "99LOCAL", "Chest"
    procedure.add_new("ContextGroupVersion", "DT", "not-a-datetime")
    ds.ProcedureCodeSequence = [procedure]  # invalid nested value -> whole Type 3 sequence removed
    ds.save_as(tmp_path / "broken.dcm", implicit_vr=True, little_endian=True)
    return pydicom.dcmread(tmp_path / "broken.dcm")


def test_broken_header_is_repaired_generically(dicom_dir, tmp_path):
    ds = broken_header(dicom_dir, tmp_path)
    original = copy.deepcopy(ds)
    repaired = repair_source_header(ds)
    clean = repaired.dataset
    assert ds == original  # the source dataset is untouched
    assert "PixelData" not in clean
    assert clean.PatientName == "" and clean.PatientID == ""
    assert clean.PatientSex == "M"
    assert clean.PatientBirthDate == "19400305"
    assert clean.StudyDate == ""
    assert clean.StudyTime == "123015"
    assert clean.StudyDescription.startswith("Chest PA") and len(clean.StudyDescription) == 64
    assert clean.PatientAge == "081Y"
    for removed in ("PatientWeight", "FrameOfReferenceUID", "ProcedureCodeSequence"):
        assert removed not in clean
    assert clean.PatientOrientation == ""
    assert clean.SpecificCharacterSet == "ISO_IR 192"
    actions = {(r.keyword, r.action) for r in repaired.repairs}
    assert {("PatientName", "emptied"), ("PatientID", "emptied"), ("PatientSex", "repaired"),
            ("StudyDate", "emptied"), ("PatientWeight", "removed"), ("ProcedureCodeSequence", "removed"),
            ("StudyDescription", "repaired"), ("SpecificCharacterSet", "repaired")} <= actions
    for repair in repaired.repairs:  # repairs can be logged: they never quote the header's values
        assert "heavy" not in repair.rule and "X" * 20 not in repair.rule and "1940" not in repair.rule


def test_broken_header_still_gives_a_valid_seg(dicom_dir, tmp_path):
    ds = broken_header(dicom_dir, tmp_path)
    path = write_lesion_seg(ds, rectangle_mask(ds.Rows, ds.Columns), tmp_path / "out" / "seg.dcm")
    seg = pydicom.dcmread(path)
    assert seg.SpecificCharacterSet == "ISO_IR 192"
    assert seg.ReferringPhysicianName == "M\u00fcller^J\u00f6rg"
    acquisition = seg.ContributingEquipmentSequence[0]
    assert (acquisition.Manufacturer, acquisition.InstitutionName) == ("ACME", "I" * 64)
    assert dciodvfy_errors(path) == []


def test_values_stored_with_another_vr_are_checked_as_the_standard_says(dicom_dir, tmp_path):
    """An explicit-VR export can store a date as DS or a sex as LO (fuzzed PACS files did): each value is judged by
    the VR the standard gives its attribute, and the SEG carries that VR, so highdicom accepts it and it validates."""
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds[0x00080020] = DataElement(0x00080020, "DS", "1.5")  # StudyDate as a decimal -> emptied
    ds[0x00100040] = DataElement(0x00100040, "LO", "YBR_FULL")  # PatientSex as free text, not M/F/O -> emptied
    ds[0x00101010] = DataElement(0x00101010, "LO", "81")  # PatientAge as free text -> repaired as AS
    ds[0x00200011] = DataElement(0x00200011, "US", 3)  # SeriesNumber (IS) as a binary number -> removed
    ds[0x00100010] = DataElement(0x00100010, "ST", "2180.3\\1531.5")  # PatientName as ST: two PN values -> emptied
    ds.save_as(tmp_path / "vr.dcm", enforce_file_format=False)
    source = pydicom.dcmread(tmp_path / "vr.dcm")
    repaired = repair_source_header(source)
    clean = repaired.dataset
    assert (clean.StudyDate, clean.PatientSex, clean.PatientAge, clean.PatientName) == ("", "", "081Y", "")
    assert [clean[k].VR for k in ("StudyDate", "PatientSex", "PatientAge", "PatientName")] == ["DA", "CS", "AS", "PN"]
    assert "SeriesNumber" not in clean
    actions = {(r.keyword, r.action) for r in repaired.repairs}
    assert {("StudyDate", "emptied"), ("PatientSex", "emptied"), ("PatientAge", "repaired"),
            ("SeriesNumber", "removed"), ("PatientName", "emptied")} <= actions
    path = write_lesion_seg(source, rectangle_mask(source.Rows, source.Columns), tmp_path / "out" / "seg.dcm")
    assert dciodvfy_errors(path) == []


@pytest.mark.parametrize(("value", "expected"), [("81", "081Y"), ("81Y", "081Y"), ("5 m", "005M"), ("012W", "012W")])
def test_age_repair(dicom_dir, value, expected):
    ds = pydicom.dcmread(dicom_dir / DX_8BIT, stop_before_pixels=True)
    ds.PatientAge = value
    assert repair_source_header(ds).dataset.PatientAge == expected


def test_unrepairable_age_is_removed(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / DX_8BIT, stop_before_pixels=True)
    ds.PatientAge = "eighty"
    assert "PatientAge" not in repair_source_header(ds).dataset


@pytest.mark.parametrize("value", ["99999999", "1.2.840.10008.5.1.4.1.1.6"])
def test_a_sop_class_a_segmentation_cannot_reference_refuses_the_source(dicom_dir, tmp_path, value):
    """A SOP Class UID that is a valid UID but no storage class of the current standard (a fuzzed '99999999'; the
    retired Ultrasound Image Storage) made highdicom fail with a bare KeyError after the analysis: it is refused
    by name, as the other Type 1 references are, before anything is written."""
    ds = pydicom.dcmread(dicom_dir / JPEG_BASELINE)
    ds.SOPClassUID = value
    with pytest.raises(CorruptFileError, match=f"SOPClassUID is invalid \\('{value}' is not a storage SOP Class"):
        write_lesion_seg(ds, rectangle_mask(ds.Rows, ds.Columns), tmp_path / "ref.dcm")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("keyword", ["SOPClassUID", "StudyInstanceUID", "SOPInstanceUID", "SeriesInstanceUID"])
def test_an_empty_reference_refuses_the_source(dicom_dir, tmp_path, keyword):
    """An empty Type 1 reference (a fuzzed empty SOP Class UID reached highdicom as a bare KeyError: '') is refused
    by name before anything is written."""
    ds = pydicom.dcmread(dicom_dir / JPEG_BASELINE)
    setattr(ds, keyword, "")
    with pytest.raises(CorruptFileError, match=f"{keyword}"):
        write_lesion_seg(ds, rectangle_mask(ds.Rows, ds.Columns), tmp_path / "ref.dcm")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SOPInstanceUID", "SeriesInstanceUID"])
def test_invalid_reference_uid_refuses_the_source(dicom_dir, tmp_path, keyword):
    ds = pydicom.dcmread(dicom_dir / JPEG_BASELINE)
    setattr(ds, keyword, "1.2.03.4")  # leading zero: dciodvfy rejects it, and it must not be altered
    with pytest.raises(CorruptFileError, match=keyword):
        write_lesion_seg(ds, rectangle_mask(ds.Rows, ds.Columns), tmp_path / "ref.dcm")
    assert list(tmp_path.iterdir()) == []


def test_mask_that_does_not_fit_is_refused(dicom_dir, tmp_path):
    source = dicom_dir / JPEG_BASELINE
    with pytest.raises(OutputError, match=f"source image is {SAMPLE_SHAPE[0]}x{SAMPLE_SHAPE[1]}"):
        write_lesion_seg(source, np.zeros((512, 512), bool), tmp_path / "a.dcm")
    with pytest.raises(OutputError, match="boolean or 0/1"):
        write_lesion_seg(source, np.full(SAMPLE_SHAPE, 0.5), tmp_path / "a.dcm")
    with pytest.raises(OutputError, match=r"\[0, 1\]"):
        write_heatmap_seg(source, np.full(SAMPLE_SHAPE, 1.5, np.float32), tmp_path / "a.dcm")
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_the_file_atomically(dicom_dir, tmp_path):
    source = dicom_dir / JPEG_BASELINE
    target = tmp_path / "seg.dcm"
    write_lesion_seg(source, np.zeros(SAMPLE_SHAPE, bool), target)
    write_lesion_seg(source, rectangle_mask(*SAMPLE_SHAPE), target)
    assert [p.name for p in tmp_path.iterdir()] == ["seg.dcm"]
    assert hd.seg.segread(target).get_pixels_by_source_instance(
        [pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID]).any()


def test_dataset_source_is_not_modified(dicom_dir, tmp_path):
    ds = pydicom.dcmread(dicom_dir / DX_8BIT)
    original = copy.deepcopy(ds)
    write_lesion_seg(ds, rectangle_mask(ds.Rows, ds.Columns), tmp_path / "x.dcm")
    assert ds == original


def test_safe_uid_name():
    assert safe_uid_name("1.2.840.10008.5.1.4.1.1.1") == "1.2.840.10008.5.1.4.1.1.1"
    assert safe_uid_name("1.2.03.4") == "1.2.03.4"  # leading zeros are invalid DICOM but still path-safe
    for hostile in ("../../etc/passwd", "Doe^John", "1.2.3/4", "", "1." * 40 + "1", "1..2", ".", "1.2.3 "):
        name = safe_uid_name(hostile)
        assert SAFE_NAME.match(name) and "/" not in name and name not in (".", "..")
        if hostile.strip():
            assert name == safe_uid_name(hostile)  # deterministic
    assert safe_uid_name("Doe^John") != safe_uid_name("Doe^Jane")


def test_uid_path_stays_under_its_root(tmp_path):
    path = uid_path(tmp_path, "../..", "PATIENT^NAME", "1.2.3")
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path.parts[-1] == "1.2.3" and "PATIENT" not in str(path)


def test_uid_helpers():
    assert is_valid_uid("1.2.840.10008") and not is_valid_uid("1.2.03") and not is_valid_uid("1." * 33 + "1")
    assert derived_uid("a", "b") == derived_uid("a", "b") != derived_uid("a", "c")
    assert is_valid_uid(derived_uid("x"))


def test_character_set_is_kept_when_known_and_dropped_when_unknown(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / MONO1_UNCOMPRESSED, stop_before_pixels=True)
    assert repair_source_header(ds).dataset.SpecificCharacterSet == "ISO_IR 100"
    ds.SpecificCharacterSet = "ISO_IR 999"
    repaired = repair_source_header(ds)
    assert "SpecificCharacterSet" not in repaired.dataset
    assert ("SpecificCharacterSet", "removed") in {(r.keyword, r.action) for r in repaired.repairs}


@pytest.mark.parametrize("character_set, name", [(["", "ISO 2022 IR 149"], "Hong^Gildong=\ud64d^\uae38\ub3d9"),
                                                  (["", "ISO 2022 IR 87"], "Yamada^Tarou=\u5c71\u7530^\u592a\u90ce")])
def test_an_iso_2022_header_highdicom_cannot_declare_gives_a_utf8_seg(dicom_dir, tmp_path, character_set, name):
    """Japanese and Korean headers (an empty first value, then ISO 2022 IR 87 or 149) were analysed and then failed
    at the SEG: highdicom takes neither term."""
    ds = pydicom.dcmread(dicom_dir / MONO1_UNCOMPRESSED)
    ds.SpecificCharacterSet = character_set
    ds.PatientName = name
    source = tmp_path / "source.dcm"
    ds.save_as(source)
    ds = pydicom.dcmread(source)
    path = write_lesion_seg(ds, rectangle_mask(ds.Rows, ds.Columns), tmp_path / "out" / "seg.dcm")
    seg = pydicom.dcmread(path)
    assert seg.SpecificCharacterSet == "ISO_IR 192" and str(seg.PatientName) == name
    assert dciodvfy_errors(path) == []
