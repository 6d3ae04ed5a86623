"""``pilletgan infer`` and the predictor: every output, in the source pixel grid, at the right place."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import slicerio
import torch
from dicom_factory import DX_8BIT, JPEG_BASELINE, JPEG_HEADER_MONO1, MONO1_UNCOMPRESSED, SAMPLE_FILES
from PIL import Image

from PilletGANLib import load_cxr
from PilletGANLib.inference import Predictor
from PilletGANLib.outputs import FORMATS, RESULT_SUFFIXES
from PilletGANLib.transforms import CXRGeometry


@pytest.mark.slow
def test_infer_writes_every_output_for_every_sample(dicom_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    png = tmp_path / "phantom.png"
    Image.fromarray(pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array).save(png)
    inputs = [*(dicom_dir / name for name in SAMPLE_FILES), png]
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "infer", *map(str, inputs), "--out", str(out),
                             "--model", str(tiny_model), "--threshold", "0.2", "--formats", *FORMATS],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for path in inputs:
        stem = path.stem
        for suffix in RESULT_SUFFIXES.values():
            assert (out / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing"
        rows, cols = load_cxr(path)[0].shape
        heat = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{stem}_heatmap.nii.gz")))
        assert heat.reshape(-1, cols).shape == (rows, cols), f"{stem}: heat map {heat.shape} vs source {rows}x{cols}"
        assert heat.min() >= 0 and heat.max() <= 1
        segmentation = slicerio.read_segmentation(str(out / f"{stem}.seg.nrrd"))
        segment = segmentation["segments"][0]
        assert segment["name"] == "Lesion"
        assert segment["terminology"]["category"][:2] == ["SCT", "49755003"]
        assert segment["terminology"]["anatomicRegion"][:2] == ["SCT", "39607008"]
        assert segmentation["voxels"].reshape(-1, cols).shape == (rows, cols)
        record = json.loads((out / f"{stem}.json").read_text())
        assert (record["rows"], record["columns"]) == (rows, cols)
        assert record["threshold"] == pytest.approx(0.2)
        assert bool(record["warnings"]) == (path.name == JPEG_HEADER_MONO1)
    assert not list(out.glob(".*")), "temporary files left behind"
    lying = next(line for line in result.stdout.splitlines() if JPEG_HEADER_MONO1 in line)
    assert "warning: the pixels look like a photographic negative" in lying


@pytest.mark.slow
def test_infer_reports_each_failure_once_and_refuses_an_empty_folder(dicom_dir: Path, tiny_model: Path,
                                                                     tmp_path: Path) -> None:
    broken = tmp_path / "in" / "broken.dcm"
    broken.parent.mkdir()
    broken.write_bytes((dicom_dir / DX_8BIT).read_bytes()[:3000])
    shutil.copy(dicom_dir / DX_8BIT, tmp_path / "in" / "good.dcm")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "PilletGANLib.cli", "infer", str(tmp_path / "in"), "--out", str(out),
               "--model", str(tiny_model)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert output.count("broken.dcm") == 1, output  # once, on its own line, after the progress bar
    line = next(line for line in done.stdout.splitlines() if "broken.dcm" in line)
    assert line.startswith("ERROR ") and ": truncated: " in line
    assert sorted(p.name for p in out.iterdir()) == ["good.json", "good.seg.nrrd", "good_heatmap.nrrd",
                                                     "good_overlay.png"]  # one heat-map format by default

    empty = tmp_path / "empty"
    empty.mkdir()
    command[4] = str(empty)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{empty}: no files to analyse" in done.stderr and "0image" not in done.stderr


@pytest.mark.slow
def test_a_second_run_does_not_read_the_first_runs_results(dicom_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    """An output folder inside the input folder is not walked (a rerun analysed the heat maps, overlays and masks of
    the first run as radiographs and failed on its JSON records); the input folder itself is refused as output."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(dicom_dir / DX_8BIT, folder / "good.dcm")
    out = folder / "results"
    command = [sys.executable, "-m", "PilletGANLib.cli", "infer", str(folder), "--out", str(out),
               "--model", str(tiny_model)]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr[-2000:]
        assert [line.split(":")[0] for line in done.stdout.splitlines()] == [f"ok    {folder / 'good.dcm'}"]
    assert sorted(p.name for p in out.iterdir()) == ["good.json", "good.seg.nrrd", "good_heatmap.nrrd",
                                                     "good_overlay.png"]
    command[command.index("--out") + 1] = str(folder)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is the input folder" in done.stderr and not (folder / "good.json").exists()


@pytest.mark.slow
def test_inputs_with_names_near_the_file_system_limit_get_all_their_outputs(dicom_dir: Path, tiny_model: Path,
                                                                            tmp_path: Path) -> None:
    """A 250-character input name is a valid file name; ``<name>_heatmap.nrrd`` is not (255 bytes at most): the run
    ended in an OSError traceback at the first such file. Long stems are shortened, each with its own digest."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a" * 246 + ".dcm", "a" * 245 + "b.dcm"]
    for name in names:
        shutil.copy(dicom_dir / DX_8BIT, folder / name)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "infer", str(folder), "--out", str(out),
                           "--model", str(tiny_model)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr[-2000:]
    records = sorted(out.glob("*.json"))
    assert len(records) == 2 and len(list(out.iterdir())) == 8
    assert sorted(json.loads(r.read_text())["source_path"][-5:] for r in records) == ["a.dcm", "b.dcm"]
    assert all(len(p.name) <= 200 for p in out.iterdir())


class PaintedHealing(torch.nn.Module):
    """A generator whose healed image differs from the input by 1.0 inside one network-grid square."""

    num_domains, in_channels = 2, 1

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.box = box
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x1, y1, x2, y2 = self.box
        paint = torch.zeros_like(x)
        paint[..., y1:y2, x1:x2] = 1.0
        return x - paint, []


@pytest.mark.slow
@pytest.mark.parametrize("name", [MONO1_UNCOMPRESSED, JPEG_BASELINE])
def test_network_box_lands_on_the_same_place_in_the_source(dicom_dir: Path, name: str) -> None:
    size, box = 128, (40, 30, 80, 90)
    card = {"preprocessing": {"image_size": size, "margin": 1.0},
            "localization": {"smoothing_sigma": 0.0, "border_fraction": 0.0, "lung_gate": False, "heat_scale": 1.0,
                             "threshold": 0.5, "min_component_fraction": 0.0}}
    predictor = Predictor(PaintedHealing(box), card, device="cpu")
    result = predictor.predict_path(dicom_dir / name)
    rows, cols = result.heatmap.shape
    assert (rows, cols) == load_cxr(dicom_dir / name)[0].shape
    expected = CXRGeometry(rows, cols, size).boxes_to_source(np.array([box], dtype=float))[0]
    assert len(result.boxes) == 1
    found = np.array([result.boxes[0].x1, result.boxes[0].y1, result.boxes[0].x2, result.boxes[0].y2])
    assert np.abs(found - expected).max() <= 1.0, (found, expected)
    if result.meta.get("pixel_spacing"):
        spacing = result.meta["pixel_spacing"]
        assert result.boxes[0].mm[0] == pytest.approx(found[0] * spacing[1])
