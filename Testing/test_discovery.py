"""Discovery of chest radiographs in messy PACS export trees built from the project's sample radiographs."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pydicom
import pytest
from dicom_factory import (
    DX_8BIT,
    JPEG_BASELINE,
    JPEG_HEADER_MONO1,
    MONO1_J2K_LOSSLESS,
    MONO1_SHAPE,
    SAMPLE_FILES,
    build_mixed_export,
    dicomdir_ready,
    read_dataset,
    renew_uids,
    write_copy,
    write_dicomdir,
)
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRBigEndian, JPEG2000Lossless, generate_uid

from PilletGANLib.dicom.discovery import DiscoveryResult, SelectionRules, SkipKind, discover
from PilletGANLib.errors import ConfigurationError, FileNotFoundInputError


def discover_within(root: Path, seconds: float = 120, **kwargs) -> DiscoveryResult:
    """Run discovery in a thread so that a walk that never ends fails the test instead of hanging it."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = discover(root, **kwargs)
        except Exception as err:  # noqa: BLE001 - re-raised below in the test's thread
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"discovery of {root} did not finish within {seconds} s (symlink loop?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture(scope="module")
def export(dicom_dir, tmp_path_factory):
    return build_mixed_export(tmp_path_factory.mktemp("export"), dicom_dir)


@pytest.fixture(scope="module")
def result(export):
    return discover_within(export.root)


def test_every_radiograph_is_found_under_its_new_uids(export, result, dicom_dir):
    found = {i.sop_instance_uid: i.path for i in result.instances}
    assert found == export.radiographs
    sample_uids = {str(pydicom.dcmread(dicom_dir / name, stop_before_pixels=True).SOPInstanceUID) for name in SAMPLE_FILES}
    assert not sample_uids & set(found)
    assert {i.modality for i in result.instances} == {"CR", "DX"}
    assert JPEG2000Lossless in {i.transfer_syntax for i in result.instances}
    assert "MONOCHROME1" in {i.photometric for i in result.instances}
    assert any(i.path.suffix == "" for i in result.instances)  # files without extension
    rg1 = next(i for i in result.instances if i.path.name == "IM0001")
    assert (rg1.rows, rg1.columns, rg1.body_part, rg1.view_position) == (*MONO1_SHAPE, "CHEST", "PA")


def test_every_other_entry_is_skipped_with_its_kind(export, result):
    skipped = {s.path: s.kind.value for s in result.skipped}
    assert skipped == export.expected_skips
    assert all(s.reason for s in result.skipped)
    reasons = {s.kind: s.reason for s in result.skipped}
    assert "CT" in reasons[SkipKind.NOT_SELECTED]
    assert "SR" in reasons[SkipKind.NOT_AN_IMAGE]
    assert "truncated" in reasons[SkipKind.TRUNCATED]
    assert "Pixel Data" in reasons[SkipKind.NO_PIXEL_DATA]
    assert "broken symbolic link" in reasons[SkipKind.UNREADABLE] or "cannot be read" in reasons[SkipKind.UNREADABLE]
    assert "loop" in reasons[SkipKind.SYMLINK_LOOP]
    assert "DICOMDIR" in reasons[SkipKind.DICOMDIR]


def test_dicomdir_files_are_found_once(export, result):
    media = [i for i in result.instances if "MEDIA" in i.path.parts]
    assert len(media) == 2
    assert len({i.path for i in result.instances}) == len(result.instances)
    assert not any(s.kind == SkipKind.DUPLICATE for s in result.skipped)


def test_discovery_is_deterministic_and_sorted(export, result):
    again = discover_within(export.root)
    assert [i.to_dict() for i in again.instances] == [i.to_dict() for i in result.instances]
    assert [s.to_dict() for s in again.skipped] == [s.to_dict() for s in result.skipped]
    keys = [(i.study_instance_uid, i.series_instance_uid, i.instance_number or -1, str(i.path)) for i in result.instances]
    assert keys == sorted(keys)
    assert [str(s.path) for s in result.skipped] == sorted(str(s.path) for s in result.skipped)


def test_grouping_by_study_and_series(export, result):
    studies = result.by_study()
    assert set(studies) == set(export.studies)
    for study, instances in studies.items():
        assert {i.series_instance_uid for i in instances} == export.studies[study]
    series = result.by_series()
    assert sum(len(v) for v in series.values()) == len(result.instances)
    assert max(len(v) for v in series.values()) == 2  # RG1 uncompressed + JPEG 2000 lossless share a series
    assert result.skip_counts()["not_selected"] == 1


def test_view_and_body_part_rules_exclude_with_a_reason(export):
    by_view = discover_within(export.root, rules=SelectionRules.parse("view=AP"))
    assert by_view.instances == []
    excluded = [s for s in by_view.skipped if s.kind == SkipKind.NOT_SELECTED]
    # every radiograph, the CT, and the truncated PA copy (rules are applied before the pixel-data checks)
    rule_first = {path for path, kind in export.expected_skips.items() if kind in ("not_selected", "truncated")}
    assert {s.path for s in excluded} == set(export.radiographs.values()) | rule_first
    assert any("View Position 'PA' is not selected" in s.reason for s in excluded)
    assert any("View Position missing" in s.reason for s in excluded)  # the NIH DX has no View Position

    chest = discover_within(export.root, rules=SelectionRules(body_parts=("chest",)))
    assert {i.modality for i in chest.instances} == {"CR"}  # the DX images have no Body Part Examined
    assert all(i.body_part == "CHEST" for i in chest.instances)

    everything = discover_within(export.root, rules=SelectionRules.parse("modality=*"))
    assert "CT" in {i.modality for i in everything.instances}


def test_rules_parse_and_print():
    rules = SelectionRules.parse(" modality = cr, DX ; body_part=CHEST;view=PA,AP ")
    assert rules == SelectionRules(modalities=("CR", "DX"), body_parts=("CHEST",), view_positions=("AP", "PA"))
    assert SelectionRules.parse(str(rules)) == rules
    assert SelectionRules.parse("") == SelectionRules() == SelectionRules.parse(None)
    assert SelectionRules.parse("for_processing=yes").include_for_processing
    assert SelectionRules.parse("laterals=yes").include_laterals and not SelectionRules().include_laterals
    assert SelectionRules.parse(str(SelectionRules(include_laterals=True))) == SelectionRules(include_laterals=True)
    assert SelectionRules.parse("view=*").view_positions is None
    for bad in ("colour=red", "modality", "modality=CR;modality=DX", "for_processing=maybe", "laterals=some", "view=,"):
        with pytest.raises(ConfigurationError):
            SelectionRules.parse(bad)


def test_duplicates_and_links(dicom_dir, tmp_path):
    ds = write_copy(dicom_dir, JPEG_BASELINE, tmp_path / "a" / "first.dcm", generate_uid(), generate_uid())
    shutil.copyfile(tmp_path / "a" / "first.dcm", tmp_path / "b_copy.dcm")  # same SOP Instance UID, another file
    os.link(tmp_path / "a" / "first.dcm", tmp_path / "c_hardlink.dcm")  # the same file twice
    (tmp_path / "d_alias").symlink_to(tmp_path / "a", target_is_directory=True)  # folder link inside the export
    result = discover_within(tmp_path)
    assert [i.path for i in result.instances] == [tmp_path / "a" / "first.dcm"]
    assert result.instances[0].sop_instance_uid == ds.SOPInstanceUID
    skipped = {s.path.name: s for s in result.skipped}
    assert set(skipped) == {"b_copy.dcm", "c_hardlink.dcm", "d_alias"}
    assert all(s.kind == SkipKind.DUPLICATE for s in skipped.values())
    assert "SOP Instance UID already found" in skipped["b_copy.dcm"].reason
    assert "same file" in skipped["c_hardlink.dcm"].reason


def test_dicomdir_with_missing_and_lower_case_files(dicom_dir, tmp_path):
    datasets = [dicomdir_ready(renew_uids(read_dataset(dicom_dir, JPEG_BASELINE), generate_uid(), generate_uid()),
                               str(i)) for i in range(3)]
    dicomdir, referenced = write_dicomdir(tmp_path / "cd", datasets)
    referenced[0].unlink()  # listed but gone
    lowered = referenced[1].parent / referenced[1].name.lower()  # copied from a CD by a tool that lower-cases names
    referenced[1].rename(lowered)
    result = discover_within(tmp_path)
    assert {i.sop_instance_uid for i in result.instances} == {datasets[1].SOPInstanceUID, datasets[2].SOPInstanceUID}
    assert lowered in {i.path for i in result.instances}
    kinds = {s.path: s.kind for s in result.skipped}
    assert kinds == {dicomdir: SkipKind.DICOMDIR, referenced[0]: SkipKind.MISSING}


def test_for_processing_images_are_not_selected_by_default(dicom_dir, tmp_path):
    def for_processing(ds: pydicom.Dataset) -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1.1"
        ds.PresentationIntentType = "FOR PROCESSING"

    write_copy(dicom_dir, DX_8BIT, tmp_path / "raw.dcm", generate_uid(), generate_uid(),
               edit=for_processing)
    default = discover_within(tmp_path)
    assert default.instances == [] and default.skipped[0].kind == SkipKind.NOT_SELECTED
    assert "For Processing" in default.skipped[0].reason
    assert len(discover_within(tmp_path, rules=SelectionRules.parse("for_processing=yes")).instances) == 1


@pytest.mark.parametrize(("view", "orientation"), [("LL", ["L", "F"]), ("", ["A", "F"])])
def test_lateral_views_are_not_selected_by_default(dicom_dir, tmp_path, view, orientation):
    """A chest study holds a lateral beside the frontal view; the model reads frontal chests."""
    def lateral(ds: pydicom.Dataset) -> None:
        ds.ViewPosition, ds.PatientOrientation = view, orientation

    write_copy(dicom_dir, DX_8BIT, tmp_path / "lateral.dcm", generate_uid(), generate_uid(), edit=lateral)
    default = discover_within(tmp_path)
    assert default.instances == [] and default.skipped[0].kind == SkipKind.NOT_SELECTED
    assert "a lateral view" in default.skipped[0].reason and "laterals=yes" in default.skipped[0].reason
    assert len(discover_within(tmp_path, rules=SelectionRules.parse("laterals=yes")).instances) == 1


def test_a_value_that_swallowed_the_file_is_quoted_short(dicom_dir, tmp_path):
    """A damaged length can make one value hold the rest of the file (1.2 MB in a fuzzed PACS file): the reason
    quotes its start and its length, not the value, so skipped.csv and the console stay readable."""
    def long_modality(ds: pydicom.Dataset) -> None:
        ds.add_new(0x00080060, "UT", "\x1bCR" + "\x00\xff" * 200_000)

    write_copy(dicom_dir, DX_8BIT, tmp_path / "long.dcm", generate_uid(), generate_uid(), edit=long_modality)
    skipped = discover_within(tmp_path).skipped
    assert [s.kind for s in skipped] == [SkipKind.NOT_SELECTED]
    reason = skipped[0].reason
    assert reason.startswith("Modality '\\x1bCR") and "characters) is not selected" in reason and len(reason) < 200


def test_a_body_its_file_meta_misdescribes_is_an_error_not_a_modality_that_is_not_selected(dicom_dir, tmp_path):
    """Found by fuzzing: File Meta that says Explicit VR Big Endian over a little-endian body turns the rest of the
    file into one garbled element without a Modality; that radiograph was reported as 'Modality missing is not
    selected', a skip, instead of as the damaged file it is."""
    ds = read_dataset(dicom_dir, DX_8BIT)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, ds.file_meta.TransferSyntaxUID.is_implicit_VR
    write_dataset(body, ds)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta)
    (tmp_path / "misdescribed.dcm").write_bytes(b"\0" * 128 + b"DICM" + meta.getvalue() + body.getvalue())
    result = discover_within(tmp_path)
    assert result.instances == [] and [s.kind for s in result.skipped] == [SkipKind.TRUNCATED]
    assert result.skipped[0].error and "Modality" not in result.skipped[0].reason


def test_single_file_root_and_missing_root(dicom_dir, tmp_path):
    result = discover_within(dicom_dir / MONO1_J2K_LOSSLESS)
    assert len(result.instances) == 1 and result.instances[0].transfer_syntax == JPEG2000Lossless
    with pytest.raises(FileNotFoundInputError):
        discover(tmp_path / "nowhere")


def test_sample_folder_is_found_with_one_duplicate_uid(dicom_dir):
    """The sample folder itself: the two JPEG files carry the same SOP Instance UID (a header-only edit)."""
    result = discover_within(dicom_dir)
    assert len(result.instances) == len(SAMPLE_FILES) - 1
    assert [s.kind for s in result.skipped] == [SkipKind.DUPLICATE]
    assert result.skipped[0].path.name == JPEG_HEADER_MONO1


def test_real_folder_is_found_with_one_duplicate_uid(real_dicom_dir):
    """The shared folder of real files: the two SIIM files carry the same SOP Instance UID (a header-only edit)."""
    result = discover_within(real_dicom_dir)
    assert len(result.instances) == 5
    assert [(s.kind, s.path.name) for s in result.skipped] == [(SkipKind.DUPLICATE,
                                                                 "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm")]
