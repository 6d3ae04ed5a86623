"""``pilletgan batch``: a messy export end to end, SEG validity, SIGKILL then resume, torchrun, refusals, failures.

Exports are built by the tests from the real radiographs of ../shared/data/dicom under new UIDs
(``dicom_factory``); the model is the tiny untrained one, so these tests check the plumbing, not the
quality of the maps. The command runs as a subprocess where it has to be killed or started by torchrun,
with ``OMP_NUM_THREADS=1`` and one image per forward pass so that runs are bit-for-bit comparable.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from dicom_factory import build_mixed_export, write_copy, write_ct_image, write_not_dicom, write_sr_document
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from PilletGANLib.batch import (
    EXIT_FAILURES,
    EXIT_NOT_STARTED,
    EXIT_OK,
    read_complete_record,
    remove_temporaries,
    run_batch,
    shard,
)
from PilletGANLib.batch.outputs import is_temporary
from PilletGANLib.cli import main
from PilletGANLib.dicom import DicomInstance, uid_path
from PilletGANLib.errors import ConfigurationError
from PilletGANLib.inference import Predictor

SAFE_NAME = re.compile(r"^([0-9]+(\.[0-9]+)*|h[0-9a-f]{40})$")
RUN_FILES = ["errors.csv", "run.json", "skipped.csv", "summary.csv"]
#: Options of every command-line run; batch size 1 keeps runs with different sharding bit-for-bit comparable.
CLI_OPTIONS = ["--threshold", "0.4", "--batch-size", "1", "--heatmap-seg", "--png", "--no-progress"]


# -- helpers ---------------------------------------------------------------------------------------------
def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines of dciodvfy (Debian dicom3tools) for ``path``; skips when it is missing."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools); .ci/run installs it")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): type, and content hash and mtime for regular files."""
    entries: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                try:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                except PermissionError:  # the chmod 000 file, when not running as root
                    digest = None
                entries[str(path.relative_to(root))] = ("file", digest, info.st_mtime_ns, info.st_mode)
            else:
                entries[str(path.relative_to(root))] = ("other", stat.S_IFMT(info.st_mode))
    return entries


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def instance_folders(out: Path) -> set[Path]:
    return {p for p in out.glob("*/*/*") if p.is_dir()}


def expected_folders(out: Path, radiographs: dict[str, Path]) -> set[Path]:
    folders = set()
    for path in radiographs.values():
        header = pydicom.dcmread(path, stop_before_pixels=True)
        folders.add(uid_path(out, header.StudyInstanceUID, header.SeriesInstanceUID, header.SOPInstanceUID))
    return folders


def output_signature(out: Path) -> dict[str, object]:
    """Per-instance files (relative path) -> what must not differ between equivalent runs."""
    signature: dict[str, object] = {}
    for path in sorted(out.glob("*/*/*/*")):
        key = str(path.relative_to(out))
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path)
            referenced = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
            signature[key] = (ds.SOPInstanceUID, ds.SeriesInstanceUID, referenced, ds.Rows, ds.Columns,
                              hashlib.sha256(ds.PixelData).hexdigest())
        elif path.name == "result.json":
            record = json.loads(path.read_text())
            signature[key] = (record["score"], record["mask_pixels"], record["boxes"], record["files"])
        else:
            signature[key] = path.stat().st_size > 0
    return signature


def cli_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def batch_command(export: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "PilletGANLib.cli", "batch", str(export), "--out", str(out), "--model", str(model),
            *CLI_OPTIONS, *extra]


def run_cli(export: Path, out: Path, model: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(export, out, model, *extra), env=cli_env(), capture_output=True, text=True,
                          timeout=300, check=False)


def fake_instance(study: str, series: str, sop: str) -> DicomInstance:
    return DicomInstance(path=Path(f"/export/{sop}"), sop_instance_uid=sop, series_instance_uid=series,
                         study_instance_uid=study, sop_class_uid="1.2.840.10008.5.1.4.1.1.1", modality="CR", rows=8,
                         columns=8, transfer_syntax=None, photometric="MONOCHROME2", body_part=None, view_position=None,
                         instance_number=None)


def build_clean_export(root: Path, dicom_dir: Path, count: int = 8) -> dict[str, Path]:
    """``count`` radiographs (NIH DX and SIIM JPEG copies, 1024 px, no extension) in 2 studies and 3 series, plus
    a CT image, an SR and a text file, which are expected in an export and skipped without error."""
    studies = [generate_uid() for _ in range(2)]
    series = [(studies[0], generate_uid()), (studies[0], generate_uid()), (studies[1], generate_uid())]
    radiographs = {}
    for index in range(count):
        study, serie = series[index % 3]
        name = "NIH_DX_UNCOMPRESSED.dcm" if index % 2 else "SIIM_CR_JPEG_BASELINE.dcm"
        target = root / f"PAT{studies.index(study)}" / f"SER{index % 3}" / f"IM{index:04d}"
        radiographs[str(write_copy(dicom_dir, name, target, study, serie).SOPInstanceUID)] = target
    write_ct_image(dicom_dir, root / "PAT0" / "CT" / "ct0001", studies[0])
    write_sr_document(root / "PAT0" / "SR" / "report.dcm", studies[0])
    write_not_dicom(root / "README.txt")
    return radiographs


class BatchFailingPredictor(Predictor):
    """A predictor whose forward pass fails for more than one image at a time (as when a batch exhausts memory)."""

    def predict_prepared(self, prepared):
        if len(prepared) > 1:
            raise RuntimeError(f"simulated out-of-memory error for a batch of {len(prepared)} images")
        return super().predict_prepared(prepared)


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, dicom_dir, tiny_model):
    """The mixed export (every kind of file an export holds) run in-process with two decoding workers."""
    root = tmp_path_factory.mktemp("mixed")
    tree = build_mixed_export(root / "export", dicom_dir)
    before = snapshot(tree.root)
    predictor = Predictor.from_path(tiny_model, device="cpu", batch_size=4, num_workers=2)
    predictor.localizer.calibration = predictor.localizer.calibration.replace(threshold=0.4)
    summary = run_batch(tree.root, root / "out", predictor, heatmap_seg=True, png=True, progress=False)
    return tree, summary, before


@pytest.fixture(scope="module")
def clean_export(tmp_path_factory, dicom_dir) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("clean") / "export"
    return root, build_clean_export(root, dicom_dir)


@pytest.fixture(scope="module")
def reference_run(clean_export, tiny_model, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One uninterrupted single-process command-line run over the clean export: what every other run must equal."""
    out = tmp_path_factory.mktemp("reference") / "out"
    return out, run_cli(clean_export[0], out, tiny_model)


# -- the mixed export ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mixed_export_runs_to_the_end(mixed_run, tiny_model):
    tree, summary, _ = mixed_run
    out = summary.out_dir
    assert summary.exit_code == EXIT_FAILURES  # the truncated, pixel-less and unreadable files
    assert summary.found == summary.succeeded == len(tree.radiographs)
    assert summary.failed == summary.already_done == 0

    rows = read_csv(summary.summary_csv)
    assert sorted(r["sop_instance_uid"] for r in rows) == sorted(tree.radiographs)
    for row in rows:
        assert row["status"] == "succeeded" and row["error"] == ""
        assert os.path.abspath(summary.input_dir / row["source"]) == os.path.abspath(tree.radiographs[row["sop_instance_uid"]])
        folder = out / row["result"]
        folder = folder.parent
        assert [SAFE_NAME.match(part) is not None for part in folder.relative_to(out).parts] == [True] * 3
        assert folder.name == row["sop_instance_uid"]
        for column, name in (("seg", "seg.dcm"), ("heatmap_seg", "heatmap_seg.dcm"), ("overlay", "overlay.png")):
            assert out / row[column] == folder / name and (folder / name).stat().st_size > 0
        record = json.loads((folder / "result.json").read_text())
        assert record["files"] == {"seg": "seg.dcm", "heatmap_seg": "heatmap_seg.dcm", "overlay": "overlay.png"}
        assert record["sop_instance_uid"] == row["sop_instance_uid"] and record["threshold"] == 0.4
        assert int(row["n_boxes"]) == len(json.loads(row["boxes"])) == len(record["boxes"])
        assert float(row["score"]) == pytest.approx(record["score"])
        assert sorted(p.name for p in folder.iterdir()) == ["heatmap_seg.dcm", "overlay.png", "result.json", "seg.dcm"]

    errors, skipped = read_csv(summary.errors_csv), read_csv(summary.skipped_csv)
    listed = {summary.input_dir / row["file"]: row["kind"] for row in errors + skipped}
    assert len(listed) == len(errors) + len(skipped)
    assert listed == tree.expected_skips  # every other file, each exactly once, with the kind it really is
    assert all(row["reason"] and row["stage"] == "discovery" for row in errors + skipped)
    assert {row["kind"] for row in errors} == {"truncated", "no_pixel_data", "unreadable"}
    assert {row["kind"] for row in skipped} == {"dicomdir", "not_selected", "not_an_image", "not_dicom", "not_a_file",
                                                "symlink_loop"}

    run = json.loads(summary.run_json.read_text())
    assert run["counts"] == summary.counts()
    assert run["counts"]["input_errors"] == len(errors) and run["counts"]["skipped"] == len(errors) + len(skipped)
    assert run["exit_code"] == EXIT_FAILURES
    assert run["model"]["sha256"] == json.loads(tiny_model.with_suffix(".json").read_text())["sha256"]
    assert run["model"]["path"] == str(tiny_model)
    assert {"pilletgan", "python", "torch", "monai", "pydicom", "highdicom"} <= set(run["software"])
    assert run["settings"]["workers"] == 2 and run["settings"]["batch_size"] == 4 and run["settings"]["threshold"] == 0.4
    timings = run["timings"]
    assert timings["total_s"] >= timings["inference_s"] > 0 and timings["instances_per_s"] > 0
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == RUN_FILES


@pytest.mark.slow
def test_every_seg_validates_and_references_its_source(mixed_run, tiny_model):
    tree, summary, _ = mixed_run
    sha256 = json.loads(tiny_model.with_suffix(".json").read_text())["sha256"]
    for sop_uid, source in tree.radiographs.items():
        header = pydicom.dcmread(source, stop_before_pixels=True)
        folder = uid_path(summary.out_dir, header.StudyInstanceUID, header.SeriesInstanceUID, sop_uid)
        record = json.loads((folder / "result.json").read_text())
        for name, kind in (("seg.dcm", "BINARY"), ("heatmap_seg.dcm", "FRACTIONAL")):
            assert dciodvfy_errors(folder / name) == [], f"{name} of {source.name}"
            seg = hd.seg.segread(folder / name)
            assert seg.SegmentationType == kind
            assert seg.get_source_image_uids() == [(header.StudyInstanceUID, header.SeriesInstanceUID, sop_uid)]
            assert (seg.Rows, seg.Columns) == (header.Rows, header.Columns)
            pixels = seg.get_pixels_by_source_instance([sop_uid])
            assert pixels.shape == (1, header.Rows, header.Columns, 1)
            if kind == "BINARY":
                assert int(pixels.astype(bool).sum()) == record["mask_pixels"]
            algorithm = seg.get_segment_description(1).algorithm_identification[0]
            assert algorithm.AlgorithmName == "PilletGAN" and algorithm.AlgorithmVersion.endswith(sha256[:12])
            assert f"model_sha256={sha256}" in algorithm.AlgorithmParameters
            assert "threshold=0.4" in algorithm.AlgorithmParameters


@pytest.mark.slow
def test_the_export_is_never_written_to(mixed_run):
    tree, _, before = mixed_run
    assert snapshot(tree.root) == before


# -- a clean export, killed and resumed, and under torchrun ----------------------------------------------------
@pytest.mark.slow
def test_clean_export_exits_0(reference_run, clean_export):
    out, done = reference_run
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    radiographs = clean_export[1]
    assert f"{len(radiographs)} radiograph(s) found: {len(radiographs)} succeeded" in done.stdout
    assert {r["status"] for r in read_csv(out / "summary.csv")} == {"succeeded"}
    assert read_csv(out / "errors.csv") == []
    assert sorted(r["kind"] for r in read_csv(out / "skipped.csv")) == ["not_an_image", "not_dicom", "not_selected"]
    assert instance_folders(out) == expected_folders(out, radiographs)


@pytest.mark.slow
def test_sigkill_then_resume_completes_every_instance_once(clean_export, reference_run, tiny_model, tmp_path):
    export, radiographs = clean_export
    reference, _ = reference_run
    out = tmp_path / "out"
    process = subprocess.Popen(batch_command(export, out, tiny_model), env=cli_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(out.glob("*/*/*/result.json")):
        assert process.poll() is None, "the run ended before writing its first result"
        assert time.monotonic() < deadline, "no result within 240 s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    complete_at_kill = {p.parent for p in out.glob("*/*/*/result.json")}
    assert 0 < len(complete_at_kill) < len(radiographs)

    # What else an interrupted run can leave: a result whose listed file is gone, stray temporaries,
    # and an instance with a SEG but no record yet.
    broken = sorted(complete_at_kill)[0]
    (broken / "seg.dcm").unlink()
    (broken / f".seg.dcm.{os.getpid()}.0badc0de.tmp").write_bytes(b"half a SEG")
    (out / f".summary.csv.{uuid.uuid4().hex[:12]}.partial.csv").write_text("half a table")
    unfinished = sorted(expected_folders(out, radiographs) - complete_at_kill)[0]
    unfinished.mkdir(parents=True, exist_ok=True)
    (unfinished / "seg.dcm").write_bytes(b"not a complete SEG")

    resumed = run_cli(export, out, tiny_model, "--resume")
    assert resumed.returncode == EXIT_OK, resumed.stderr[-3000:]
    assert [p for p in out.rglob("*") if p.name.startswith(".")] == []  # no temporaries left
    assert instance_folders(out) == expected_folders(out, radiographs)  # one folder per instance, no other
    for folder in instance_folders(out):
        assert read_complete_record(folder, fake_instance("", "", folder.name), ("seg", "heatmap_seg", "overlay"),
                                    json.loads((folder / "result.json").read_text())["model_sha256"], 0.4) is not None
    statuses = {r["sop_instance_uid"]: r["status"] for r in read_csv(out / "summary.csv")}
    kept = {folder.name for folder in complete_at_kill - {broken}}
    assert {uid for uid, status in statuses.items() if status == "already_done"} == kept
    assert {uid for uid, status in statuses.items() if status == "succeeded"} == set(radiographs) - kept
    assert output_signature(out) == output_signature(reference)

    modified = {p: p.stat().st_mtime_ns for p in out.glob("*/*/*/*")}
    again = run_cli(export, out, tiny_model, "--resume")
    assert again.returncode == EXIT_OK, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/*/*")} == modified  # nothing redone, nothing added
    assert {r["status"] for r in read_csv(out / "summary.csv")} == {"already_done"}
    assert f"0 succeeded, {len(radiographs)} already done, 0 failed" in again.stdout


@pytest.mark.slow
def test_torchrun_with_two_processes_matches_one_process(clean_export, reference_run, tiny_model, tmp_path):
    export, _ = clean_export
    reference, _ = reference_run
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               *batch_command(export, out, tiny_model)[1:]]
    done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert output_signature(out) == output_signature(reference)
    assert sorted(p.name for p in out.iterdir() if not p.is_dir() or not SAFE_NAME.match(p.name)) == RUN_FILES
    columns = ("study_instance_uid", "series_instance_uid", "sop_instance_uid", "source", "status", "score",
               "n_boxes", "boxes", "seg", "heatmap_seg", "overlay", "result")
    rows = [{c: r[c] for c in columns} for r in read_csv(out / "summary.csv")]
    assert rows == [{c: r[c] for c in columns} for r in read_csv(reference / "summary.csv")]
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["world_size"] == 2 and len(run["timings"]["inference_s_per_rank"]) == 2
    assert read_csv(out / "skipped.csv") == read_csv(reference / "skipped.csv")


# -- refusals and failures ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_that_must_not_start_exits_2(clean_export, tiny_model, tmp_path, capsys):
    export, _ = clean_export
    before = snapshot(export)
    model = ["--model", str(tiny_model)]
    assert main(["batch", str(export), "--out", str(export / "results"), *model]) == EXIT_NOT_STARTED
    assert "inside the export folder" in capsys.readouterr().err
    link = tmp_path / "link"
    link.symlink_to(export, target_is_directory=True)
    assert main(["batch", str(export), "--out", str(link / "results"), *model]) == EXIT_NOT_STARTED
    assert main(["batch", str(tmp_path / "no_such_export"), "--out", str(tmp_path / "a"), *model]) == EXIT_NOT_STARTED
    assert "does not exist" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("someone else's file")
    assert main(["batch", str(export), "--out", str(busy), *model]) == EXIT_NOT_STARTED
    assert "--resume" in capsys.readouterr().err
    assert main(["batch", str(export), "--out", str(tmp_path / "b"), "--model", str(tmp_path / "none.pt")]) \
        == EXIT_NOT_STARTED
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    with pytest.raises(ConfigurationError, match="inside the export"):
        run_batch(export, export / "PAT0" / "out", Predictor.from_path(tiny_model, device="cpu"), progress=False)
    assert snapshot(export) == before


@pytest.mark.slow
def test_failed_files_are_recorded_and_the_run_goes_on(dicom_dir, tiny_model, tmp_path):
    export = tmp_path / "export"
    radiographs = build_clean_export(export, dicom_dir, count=4)

    def undecodable(ds: pydicom.Dataset) -> None:
        ds.PixelData = encapsulate([b"\x00" * 1000])  # a JPEG fragment that is not JPEG: found, then fails to decode

    bad = write_copy(dicom_dir, "SIIM_CR_JPEG_BASELINE.dcm", export / "PAT1" / "bad", generate_uid(), generate_uid(),
                     edit=undecodable)
    out = tmp_path / "out"
    blocked_uid = sorted(radiographs)[0]
    header = pydicom.dcmread(radiographs[blocked_uid], stop_before_pixels=True)
    blocked = uid_path(out, header.StudyInstanceUID, header.SeriesInstanceUID, blocked_uid)
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the instance's folder must go")  # its outputs cannot be written

    predictor = BatchFailingPredictor.from_path(tiny_model, device="cpu", batch_size=2)
    summary = run_batch(export, out, predictor, resume=True, progress=False)
    assert summary.exit_code == EXIT_FAILURES
    assert (summary.found, summary.succeeded, summary.failed) == (5, 3, 2)
    problems = {row["file"]: row for row in read_csv(summary.errors_csv)}
    assert problems["PAT1/bad"]["stage"] == "inference" and problems["PAT1/bad"]["kind"] == "CorruptFileError"
    blocked_source = str(radiographs[blocked_uid].relative_to(export))
    assert problems[blocked_source]["stage"] == "output"
    statuses = {r["sop_instance_uid"]: (r["status"], r["seg"]) for r in read_csv(summary.summary_csv)}
    assert statuses[str(bad.SOPInstanceUID)] == ("failed", "") and statuses[blocked_uid] == ("failed", "")
    assert not uid_path(out, bad.StudyInstanceUID, bad.SeriesInstanceUID, bad.SOPInstanceUID).exists()
    assert [p for p in out.rglob("*") if p.name.startswith(".")] == []


# -- units ------------------------------------------------------------------------------------------------
def test_shards_are_disjoint_complete_and_independent_of_input_order():
    instances = [fake_instance(f"1.{i % 3}", f"1.{i % 3}.{i % 2}", f"1.{i % 3}.{i % 2}.{i}") for i in range(11)]
    shards = [shard(instances, rank, 3) for rank in range(3)]
    assert sorted(len(s) for s in shards) == [3, 4, 4]
    assert sorted(i.sop_instance_uid for s in shards for i in s) == sorted(i.sop_instance_uid for i in instances)
    assert [shard(list(reversed(instances)), rank, 3) for rank in range(3)] == shards
    with pytest.raises(ConfigurationError):
        shard(instances, 3, 3)


def test_temporaries_of_every_writer_are_recognised_and_removed(tmp_path):
    folder = tmp_path / "1.2" / "1.2.3" / "1.2.3.4"
    folder.mkdir(parents=True)
    temporaries = [f".seg.dcm.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp",  # the SEG writer's
                   f".result.json.{uuid.uuid4().hex[:12]}.partial.json", f".x.{uuid.uuid4().hex[:12]}.partial"]
    keep = ["seg.dcm", "result.json", ".hidden", "notes.tmp"]
    for name in temporaries + keep:
        (folder / name).write_text("x")
    assert all(is_temporary(name) for name in temporaries) and not any(is_temporary(name) for name in keep)
    assert remove_temporaries(tmp_path) == len(temporaries)
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


@pytest.mark.slow
def test_an_instance_is_complete_only_with_every_listed_file_and_the_same_model(mixed_run, tmp_path):
    _, summary, _ = mixed_run
    record = summary.records[0]
    folder = tmp_path / "instance"
    shutil.copytree(summary.out_dir / Path(record.files["result"]).parent, folder)
    instance = fake_instance(record.study_instance_uid, record.series_instance_uid, record.sop_instance_uid)
    sha256 = summary.model["sha256"]
    kinds = ("seg", "heatmap_seg", "overlay")
    assert read_complete_record(folder, instance, kinds, sha256, 0.4)["files"]["seg"] == "seg.dcm"
    assert read_complete_record(folder, instance, kinds, sha256, 0.5) is None  # another threshold
    assert read_complete_record(folder, instance, kinds, "0" * 64, 0.4) is None  # other weights
    assert read_complete_record(folder, fake_instance("1", "2", "3"), kinds, sha256, 0.4) is None  # another instance
    (folder / "overlay.png").unlink()
    assert read_complete_record(folder, instance, ("seg",), sha256, 0.4) is None  # a listed file is missing
