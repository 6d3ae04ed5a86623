"""The MONAI bundle ``Resources/bundle/PilletGAN_CXR``, tested the model-zoo way.

``ConfigWorkflow`` with small overrides for training, evaluation and inference, the bundle command line
(``python -m monai.bundle run|verify_net_in_out|ckpt_export|onnx_export``) run from the bundle folder, and
the bundle files checked against the MONAI Bundle Specification. The tests bring their own tiny models;
the shipped ``models/model.pt`` is checked when it is there.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pydicom
import pytest
import SimpleITK as sitk
import torch
from conftest import REPO_ROOT, make_tiny_model
from dicom_factory import DX_8BIT, JPEG_BASELINE, MONO1_J2K_LOSSLESS, MONO1_UNCOMPRESSED, write_sr_document
from monai.bundle import ConfigWorkflow
from PIL import Image
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import generate_uid

from PilletGANLib import __version__, load_cxr
from PilletGANLib.bundle import image_datalist, load_records, load_weights, training_split
from PilletGANLib.data import ManifestRecord, write_manifest
from PilletGANLib.data.datasets import record_to_item, training_transforms
from PilletGANLib.engine import TrainingConfig
from PilletGANLib.errors import ConfigurationError, DataError, OutputError
from PilletGANLib.inference import Predictor
from PilletGANLib.inference.ensemble import combine_models
from PilletGANLib.model_store import load_model, read_card, save_model
from PilletGANLib.networks import HealthyTranslator, PilletGenerator

BUNDLE = REPO_ROOT / "Resources" / "bundle" / "PilletGAN_CXR"
CONFIGS = BUNDLE / "configs"
SHIPPED_MODEL = BUNDLE / "models" / "model.pt"
#: Text marking the model card's sections that the trained model's report must fill.
PLACEHOLDER = "TO FILL"

#: Top-level metadata fields of the MONAI Bundle Specification and their JSON types. The specification's
#: mandatory fields, plus the optional ones this bundle promises. ``optional_packages_version`` was renamed
#: ``required_packages_version`` (MONAI's ConfigParser rewrites the old name to the new one).
METADATA_FIELDS: dict[str, type | tuple[type, ...]] = {
    "version": str,
    "changelog": dict,
    "monai_version": str,
    "pytorch_version": str,
    "numpy_version": str,
    "required_packages_version": dict,
    "task": str,
    "description": str,
    "authors": str,
    "copyright": str,
    "data_source": str,
    "data_type": str,
    "image_classes": str,
    "label_classes": str,
    "pred_classes": str,
    "eval_metrics": dict,
    "intended_use": str,
    "references": list,
    "network_data_format": dict,
}
#: Keys every tensor format specifier (``network_data_format`` inputs and outputs) must have.
TENSOR_FIELDS: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "format": str,
    "modality": str,
    "num_channels": int,
    "spatial_shape": list,
    "dtype": str,
    "value_range": list,
    "is_patch_data": bool,
    "channel_def": dict,
}
TINY_TRAINING = {
    "val_interval": 3,
    "settings#image_size": 64,
    "settings#batch_size": 4,
    "settings#num_workers": 0,
    "settings#base_channels": 8,
    "settings#num_res_blocks": 1,
    "settings#disc_base_channels": 8,
    "settings#disc_layers": 4,
    "settings#iterations": 4,
    "settings#n_critic": 2,
    "settings#ema_decay": 0.9,
    "settings#log_interval": 1,
    "settings#checkpoint_interval": 2,
    "settings#image_log_interval": 2,
}


def bundle_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m monai.bundle ARGS`` run in the bundle folder, as the bundle's documentation shows it."""
    result = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=BUNDLE, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def workflow(config: str, workflow_type: str | None, **override: Any) -> ConfigWorkflow:
    """The bundle workflow of ``configs/<config>`` (logging left as the test session set it)."""
    return ConfigWorkflow(config_file=str(CONFIGS / config), meta_file=str(CONFIGS / "metadata.json"),
                          logging_file=False, workflow_type=workflow_type, bundle_root=str(BUNDLE), **override)


def read_volume(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A one-slice map written by the bundle: ``rows x cols`` array and ``(x, y, z)`` spacing."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    assert array.shape[0] == 1
    return array[0], image.GetSpacing()


def assert_same_as_product(heatmap_file: Path, mask_file: Path, source: Path, predictor: Predictor) -> None:
    """The bundle's heat map and mask of ``source`` equal :class:`Predictor`'s, in the source grid."""
    expected = predictor.predict_path(source)
    heatmap, spacing = read_volume(heatmap_file)
    mask, _ = read_volume(mask_file)
    assert heatmap.shape == mask.shape == expected.heatmap.shape
    row_mm, col_mm = expected.meta.get("pixel_spacing") or (1.0, 1.0)
    assert spacing == pytest.approx((col_mm, row_mm, 1.0))
    np.testing.assert_allclose(heatmap, expected.heatmap, atol=1e-5)
    disagree = mask.astype(bool) != expected.mask  # only where rounding can put a pixel on either side of the threshold
    assert np.all(np.abs(expected.heatmap[disagree] - expected.threshold) < 1e-5)


def save_tiny_model(path: Path, image_size: int, localization: dict[str, Any], margin: float = 1.0) -> Path:
    """A tiny untrained LTA model whose card sets the preprocessing and localization the test needs."""
    torch.manual_seed(1)
    network = {"base_channels": 8, "num_res_blocks": 1, "attention": "lta"}
    card = {"name": "tiny-untrained", "network": network, "healthy_index": 0,
            "preprocessing": {"image_size": image_size, "margin": margin}, "localization": localization}
    return save_model(PilletGenerator(**network).state_dict(), card, path)


# -- bundle files -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_metadata_has_the_specification_fields_and_types() -> None:
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    for name, kind in METADATA_FIELDS.items():
        assert isinstance(metadata.get(name), kind), f"metadata.json: '{name}' missing or not {kind}"
    assert "optional_packages_version" not in metadata, "MONAI rewrites it over required_packages_version"
    for name in ("version", "monai_version", "pytorch_version", "numpy_version"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", metadata[name]), name
    assert metadata["version"] in metadata["changelog"]
    assert metadata["required_packages_version"]["pilletgan"] == __version__
    assert all(value is None or isinstance(value, int | float) for value in metadata["eval_metrics"].values())
    assert "not for clinical use" in metadata["intended_use"].lower()
    formats = metadata["network_data_format"]
    assert set(formats) == {"inputs", "outputs"} and set(formats["inputs"]) == {"image"}
    for tensor in [*formats["inputs"].values(), *formats["outputs"].values()]:
        for name, kind in TENSOR_FIELDS.items():
            assert isinstance(tensor.get(name), kind), f"network_data_format: '{name}' missing or not {kind}"
        assert sorted(tensor["channel_def"]) == [str(i) for i in range(tensor["num_channels"])]
        assert len(tensor["spatial_shape"]) == 2 and all(s % 4 == 0 for s in tensor["spatial_shape"])
        low, high = tensor["value_range"]
        assert low < high
    # what the network really takes and returns
    image, pred = formats["inputs"]["image"], formats["outputs"]["pred"]
    network = HealthyTranslator(PilletGenerator(base_channels=8, num_res_blocks=1)).eval()
    x = torch.rand(1, image["num_channels"], *image["spatial_shape"]) * 2 - 1
    with torch.no_grad():
        out = network(x)
    assert out.shape == (1, pred["num_channels"], *pred["spatial_shape"]) and out.dtype == torch.float32
    assert pred["value_range"][0] <= float(out.min()) and float(out.max()) <= pred["value_range"][1]


def test_license_model_card_and_logging_config_are_in_place() -> None:
    license_text = (BUNDLE / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    assert "NON-COMMERCIAL RESEARCH USE" in license_text
    card = (BUNDLE / "docs" / "README.md").read_text()
    for section in ("## Model overview", "## Data", "## Training", "## Performance", "## Limitations", "## Intended use",
                    "## Commands"):
        assert section in card
    assert "not for clinical use" in card.lower()
    assert "[logger_root]" in (CONFIGS / "logging.conf").read_text()


# -- network --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bundle_network_is_the_generator_with_one_input() -> None:
    generator = PilletGenerator(base_channels=8, num_res_blocks=1).eval()
    network = HealthyTranslator(PilletGenerator(base_channels=8, num_res_blocks=1)).eval()
    assert set(network.state_dict()) == set(generator.state_dict())
    network.load_state_dict(generator.state_dict())
    x = torch.rand(2, 1, 32, 48) * 2 - 1
    with torch.no_grad():
        healed, _ = generator(x, torch.zeros(2, dtype=torch.long))
        out = network(x)
    assert torch.equal(out[:, :1], healed) and torch.equal(out[:, 1:], (healed - x).abs())
    with pytest.raises(ConfigurationError, match="healthy_index 2"):
        HealthyTranslator(PilletGenerator(), healthy_index=2)


@pytest.mark.slow
def test_bundle_exports_an_ensemble_model_it_builds_from_the_card(tmp_path: Path) -> None:
    model = tmp_path / "ensemble" / "model.pt"
    combine_models([make_tiny_model(tmp_path / f"m{i}.pt", attention="lta", seed=i) for i in range(2)], model)
    common = ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json", f"--model_path={model}"]
    bundle_cli("ckpt_export", "network_def", "--filepath", str(tmp_path / "model.ts"), "--ckpt_file", str(model),
               *common, "--use_trace", "True")
    network = HealthyTranslator.from_card(read_card(model))
    load_weights(network, model)
    x = torch.rand(2, 1, 64, 48) * 2 - 1
    healed, _ = Predictor.from_path(model, device="cpu", backend="torch").translate(x)  # eager: bit-level equality
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        assert (network.eval()(x)[:, :1] - healed).abs().max() < 1e-6
        assert (scripted(x) - network(x)).abs().max() < 1e-5


@pytest.mark.slow
def test_network_verification_and_exports_match_the_eager_network(tmp_path: Path, tiny_model: Path) -> None:
    model = f"--model_path={tiny_model}"
    common = ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"]
    bundle_cli("verify_net_in_out", "network_def", *common, model)
    network = HealthyTranslator.from_card(read_card(tiny_model))
    load_weights(network, tiny_model)
    network.eval()
    x = torch.rand(2, 1, 256, 256) * 2 - 1
    other = torch.rand(1, 1, 96, 64) * 2 - 1
    with torch.no_grad():
        expected, expected_other = network(x), network(other)

    bundle_cli("ckpt_export", "network_def", "--filepath", str(tmp_path / "model.ts"), "--ckpt_file", str(tiny_model),
               *common, model, "--use_trace", "True")
    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    with torch.no_grad():
        assert (scripted(x) - expected).abs().max() < 1e-5
        assert (scripted(other) - expected_other).abs().max() < 1e-5

    axes = "{0: 'batch', 2: 'height', 3: 'width'}"
    bundle_cli("onnx_export", "network_def", "--filepath", str(tmp_path / "model.onnx"), "--ckpt_file", str(tiny_model),
               *common, model, "--use_trace", "True", "--converter_kwargs",
               f"{{'input_names': ['image'], 'output_names': ['pred'], 'dynamic_axes': {{'image': {axes}, "
               f"'pred': {axes}}}, 'dynamo': False}}")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for inputs, outputs in ((x, expected), (other, expected_other)):
        (result,) = session.run(["pred"], {"image": inputs.numpy()})
        assert np.abs(result - outputs.numpy()).max() < 1e-4


# -- inference ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_inference_cli_writes_maps_aligned_with_the_dicom_sources(tmp_path: Path, dicom_dir: Path,
                                                                   tiny_model: Path) -> None:
    out = tmp_path / "out"
    bundle_cli("run", "--config_file", "configs/inference.json", "--meta_file", "configs/metadata.json",
               "--bundle_root", ".", "--dataset_dir", str(dicom_dir), "--output_dir", str(out),
               "--model_path", str(tiny_model))
    sources = sorted(dicom_dir.glob("*.dcm"))
    with open(out / "scores.csv", newline="") as handle:
        scores = {Path(row[0]).name: float(row[1]) for row in csv.reader(handle)}
    assert sorted(scores) == [p.name for p in sources]
    for source in sources:
        image, meta = load_cxr(source)
        heatmap, spacing = read_volume(out / f"{source.stem}_heatmap.nii.gz")
        mask, _ = read_volume(out / f"{source.stem}_mask.nii.gz")
        assert heatmap.shape == mask.shape == image.shape, source.name
        row_mm, col_mm = meta["pixel_spacing"] or (1.0, 1.0)
        assert spacing == pytest.approx((col_mm, row_mm, 1.0))
        assert heatmap.dtype == np.float32 and heatmap.min() >= 0 and heatmap.max() <= 1
        assert set(np.unique(mask)) <= {0, 1}
    # the bundle's MONAI chain reads every pixel, as the product does with --full-resolution-decode
    predictor = Predictor.from_path(tiny_model, device="cpu", reduced_resolution_decode=False)
    for name in (MONO1_UNCOMPRESSED, JPEG_BASELINE):  # not square, without spacing; square with spacing
        source = dicom_dir / name
        assert_same_as_product(out / f"{source.stem}_heatmap.nii.gz", out / f"{source.stem}_mask.nii.gz", source,
                               predictor)
        assert scores[source.name] == pytest.approx(predictor.predict_path(source).score, abs=1e-6)


@pytest.mark.slow
def test_inference_leaves_out_a_file_it_cannot_read_and_goes_on(tmp_path: Path, dicom_dir: Path,
                                                                 tiny_model: Path) -> None:
    """A radiograph whose header passes the datalist's checks but whose pixels cannot be read (here a Modality LUT
    without its data), sorted first, used to end the run before any map was written (MONAI's Dataset raises). A
    radiograph whose header is broken was left out of the datalist with a warning only; it is listed too."""
    data = tmp_path / "data"
    data.mkdir()
    for name in (DX_8BIT, JPEG_BASELINE):
        shutil.copy(dicom_dir / name, data / name)
    broken = pydicom.dcmread(dicom_dir / DX_8BIT)
    table = pydicom.Dataset()
    table.LUTDescriptor, table.ModalityLUTType = [256, 0, 8], "US"  # no LUT Data
    broken.ModalityLUTSequence = [table]
    broken.save_as(data / "0_broken.dcm")
    j2k = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)  # garbage tile data: pydicom logs each decoder's traceback
    fragment = bytearray(next(generate_frames(j2k.PixelData, number_of_frames=1)))
    body = fragment.index(b"\xff\x93") + 2
    j2k.PixelData = encapsulate([bytes(fragment[:body]) + random.Random(0).randbytes(len(fragment) - body)])
    j2k.save_as(data / "1_broken_j2k.dcm")
    no_bits = pydicom.dcmread(dicom_dir / DX_8BIT)  # a broken header: listed too, not only warned about
    del no_bits.BitsAllocated
    no_bits.save_as(data / "2_no_bits_allocated.dcm")
    out = tmp_path / "out"
    run = bundle_cli("run", "--config_file", "configs/inference.json", "--meta_file", "configs/metadata.json",
                     "--bundle_root", ".", "--dataset_dir", str(data), "--output_dir", str(out),
                     "--model_path", str(tiny_model))
    assert "Traceback" not in run.stdout + run.stderr  # the bundle's logging.conf quiets pydicom as the CLI does
    with open(out / "scores.csv", newline="") as handle:
        assert sorted(Path(row[0]).name for row in csv.reader(handle)) == sorted((DX_8BIT, JPEG_BASELINE))
    for name in (DX_8BIT, JPEG_BASELINE):
        assert (out / f"{Path(name).stem}_heatmap.nii.gz").is_file()
    with open(out / "errors.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda row: row["file"])
    assert [(Path(row["file"]).name, row["kind"]) for row in rows] == [("0_broken.dcm", "corrupt"),
                                                                      ("1_broken_j2k.dcm", "corrupt"),
                                                                      ("2_no_bits_allocated.dcm", "corrupt")]
    assert "the header's Modality LUT has no LUT Data" in rows[0]["reason"]
    assert "pixel data cannot be decoded" in rows[1]["reason"]


@pytest.mark.slow
def test_inference_workflow_keeps_subfolders_batches_and_gates_by_lungs(tmp_path: Path, phantom_folders) -> None:
    """Lung gate, interior weighting and the mirrored pass (``LocalizerInferer``) give the Predictor's maps."""
    first, second = phantom_folders.images_of("valid", "disease")[:2]
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir()
    shutil.copy(first, data / "a" / "study.png")
    crop = np.asarray(Image.open(second).convert("L"))[:, 10:50]  # a non-square radiograph, 64 rows x 40 columns
    Image.fromarray(crop).save(data / "b" / "study.png")
    (data / "notes.txt").write_text("not an image\n")
    model = save_tiny_model(tmp_path / "model.pt", image_size=64, margin=0.9,
                            localization={"lung_gate": True, "lung_weighting": "interior", "mirror_average": True,
                                          "heat_scale": 0.05, "threshold": 0.4, "smoothing_sigma": 3.0,
                                          "border_fraction": 0.05})
    out = tmp_path / "out"
    infer = workflow("inference.json", "infer", dataset_dir=str(data), output_dir=str(out), model_path=str(model),
                     **{"dataloader#batch_size": 2, "dataloader#num_workers": 0})
    infer.initialize()
    assert infer.check_properties() == []
    infer.run()
    infer.finalize()
    predictor = Predictor.from_path(model, device="cpu")
    for folder, rows_cols in (("a", (64, 64)), ("b", (64, 40))):
        source = data / folder / "study.png"
        heatmap_file, mask_file = out / folder / "study_heatmap.nii.gz", out / folder / "study_mask.nii.gz"
        assert_same_as_product(heatmap_file, mask_file, source, predictor)
        assert read_volume(heatmap_file)[0].shape == rows_cols
    assert read_volume(out / "a" / "study_mask.nii.gz")[0].any(), "the test's settings should give a non-empty mask"
    assert not list(out.glob("notes*"))


def test_inputs_of_one_folder_that_share_a_stem_keep_their_maps_apart(tmp_path: Path) -> None:
    """``x.dcm`` beside its preview ``x.png``: both were written as ``x_heatmap.nii.gz``, the last one winning; such
    files now keep their whole name in the stem, the others stay as they were. Names equal once made safe (non-Latin
    names, a space beside an underscore) still collided whole; they get a digest of their name."""
    from PilletGANLib.bundle.transforms import SaveSourceMapd

    names = ("x.dcm", "x.png", "y.dcm", "肺.png", "胸.png", "z 1.png", "z_1.png", "notes.txt")
    for name in names:
        (tmp_path / name).write_bytes(b"")
    saver = SaveSourceMapd(["pred"], tmp_path / "out", "heatmap")
    stems = [saver.stem_for(tmp_path / name) for name in names[:-1]]
    assert stems[:3] == ["x.dcm", "x.png", "y"]
    assert [stem[:6] for stem in stems[3:]] == ["_.png-", "_.png-", "z_1.pn", "z_1.pn"]  # equal once made safe
    assert len(set(stems)) == len(stems), stems


def test_an_image_whose_maps_cannot_be_written_is_listed_and_the_run_goes_on(tmp_path: Path) -> None:
    """A folder in the way of one image's mask (or a full disk, a read-only sub-folder) raised out of the
    post-processing and ended the whole bundle run; the image is now listed in ``errors.csv`` with none of its maps
    left, and the next image is written."""
    from PilletGANLib.bundle.transforms import SaveSourceMapd
    from PilletGANLib.transforms import LoadCXRd

    for name in ("blocked.png", "free.png"):
        Image.fromarray(np.arange(40 * 36, dtype=np.uint8).reshape(40, 36)).save(tmp_path / name)
    out, errors = tmp_path / "out", tmp_path / "errors.csv"
    (out / "blocked_mask.nii.gz").mkdir(parents=True)
    saver = SaveSourceMapd(["pred", "mask"], out, ["heatmap", "mask"], errors_csv=errors)
    for name in ("blocked.png", "free.png"):
        item = LoadCXRd("image")({"image": str(tmp_path / name)})
        saver({**item, "pred": torch.zeros(1, 40, 36), "mask": torch.zeros(1, 40, 36, dtype=torch.uint8)})
    assert sorted(p.name for p in out.iterdir()) == ["blocked_mask.nii.gz", "free_heatmap.nii.gz", "free_mask.nii.gz"]
    with open(errors, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert [(Path(row[0]).name, row[1]) for row in rows] == [("blocked.png", "output")]
    assert "a folder of that name exists" in rows[0][2]
    with pytest.raises(OutputError, match="expected \\(1, rows, cols\\)"):  # a wrong chain still ends it
        saver({**item, "pred": torch.zeros(40, 36), "mask": torch.zeros(1, 40, 36)})
    with pytest.raises(OutputError, match="a folder of that name exists"):  # without errors_csv, as before
        SaveSourceMapd(["mask"], out, ["mask"])({**LoadCXRd("image")({"image": str(tmp_path / "blocked.png")}),
                                                 "mask": torch.zeros(1, 40, 36)})
    config = json.loads((BUNDLE / "configs" / "inference.json").read_text())
    saver_config = next(t for t in config["postprocessing"]["transforms"] if t["_target_"].endswith("SaveSourceMapd"))
    assert saver_config["errors_csv"] == "@dataset#errors_csv"


def test_image_datalist_finds_radiographs_by_content(tmp_path: Path, dicom_dir: Path) -> None:
    shutil.copy(dicom_dir / DX_8BIT, tmp_path / "1.2.840.1234")  # a DICOM file without extension
    (tmp_path / "README.txt").write_text("export notes\n")
    write_sr_document(tmp_path / "report.dcm", generate_uid())
    assert image_datalist(tmp_path) == [{"image": str(tmp_path / "1.2.840.1234")}]
    maps = tmp_path / "maps"  # an output_dir inside dataset_dir: its overlays are not read on the next run
    maps.mkdir()
    Image.fromarray(pydicom.dcmread(dicom_dir / DX_8BIT).pixel_array).save(maps / "study_overlay.png")
    assert image_datalist(tmp_path, skip=maps) == [{"image": str(tmp_path / "1.2.840.1234")}]
    assert len(image_datalist(tmp_path)) == 2
    shutil.rmtree(maps)
    (tmp_path / "report.dcm").unlink()
    (tmp_path / "1.2.840.1234").unlink()
    with pytest.raises(DataError, match="no DICOM or image files"):
        image_datalist(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        image_datalist(tmp_path / "missing")


# -- training and evaluation ----------------------------------------------------------------------------------------


def training_manifest(folder: Path, dataset: Path, per_class: int = 12) -> Path:
    """``per_class`` 64 px images of each class of the NIH-layout ``dataset``, one in four held out for validation."""
    root = dataset / "train"
    records = []
    for label, sub in (("healthy", "0_normal"), ("disease", "1_abnormal")):
        for index, path in enumerate(sorted((root / sub).glob("*.png"))[:per_class]):
            records.append(ManifestRecord(image=path, label=label, patient_id=path.name.split("_")[0],
                                          split="val" if index % 4 == 0 else "train"))
    return write_manifest(records, folder / "train.csv")


def evaluation_manifest(folder: Path, root: Path) -> Path:
    """Six healthy 64 px images of the NIH-layout ``root`` and five with boxes (``boxes.csv``, 64 px coordinates)."""
    images = {p.name: p for p in root.rglob("*.png")}
    records = [ManifestRecord(image=p, label="healthy", split="test")
               for p in sorted((root / "valid" / "0_normal").glob("*.png"))[:6]]
    with open(root / "boxes.csv", newline="") as handle:
        for row in list(csv.DictReader(handle))[:5]:
            x, y, w, h = (float(row[k]) for k in ("x_64", "y_64", "w_64", "h_64"))
            records.append(ManifestRecord(image=images[row["Image Index"]], label="disease", split="test",
                                          boxes=np.array([[x, y, x + w, y + h]])))
    return write_manifest(records, folder / "test.csv")


@pytest.mark.slow
def test_class_folders_become_patient_split_training_records(phantom_folders) -> None:
    dataset = phantom_folders.root
    train, val = training_split(load_records(dataset))
    assert len(train) + len(val) == len(list(dataset.rglob("*.png")))
    assert {r.label for r in train} == {r.label for r in val} == {"healthy", "disease"}
    assert not {r.patient_id for r in train} & {r.patient_id for r in val}


def test_train_settings_are_the_defaults_of_pilletgan_train() -> None:
    """The bundle lists no setting of its own: its settings are ``pilletgan train``'s defaults, and its components
    read them from the one ``TrainingConfig`` (``--settings#KEY VALUE`` overrides any)."""
    config = json.loads((CONFIGS / "train.json").read_text())
    assert config["settings"] == {"_target_": "PilletGANLib.engine.TrainingConfig", "val_interval": "@val_interval"}
    assert config["val_interval"] == TrainingConfig().to_dict()["val_interval"]
    text = (CONFIGS / "train.json").read_text()
    assert "@settings#" not in text, "components read the instantiated settings, not config keys that are not there"
    for key in ("network_kwargs", "discriminator_kwargs", "loss_kwargs", "optimizer"):
        assert f"@settings.{key}(" in text


@pytest.mark.slow
def test_train_then_evaluate(tmp_path: Path, phantom_folders) -> None:
    manifest = training_manifest(tmp_path, phantom_folders.root)
    run_dir = tmp_path / "run"
    trainer = workflow("train.json", "train", manifest=str(manifest), output_dir=str(run_dir), **TINY_TRAINING)
    trainer.initialize()
    assert trainer.check_properties() == []
    # the bundle's preprocessing is the library's training preprocessing
    record = trainer.parser.get_parsed_content("train#records")[0]
    bundle_item = trainer.parser.get_parsed_content("train#preprocessing")(record_to_item(record))
    library_item = training_transforms(64, 1.0)(record_to_item(record))
    assert torch.equal(torch.as_tensor(bundle_item["image"]), torch.as_tensor(library_item["image"]))
    trainer.run()
    trainer.finalize()

    checkpoint = torch.load(run_dir / "checkpoint_final.pt", map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"generator", "discriminator", "g_optimizer", "d_optimizer", "ema"}
    assert (run_dir / "checkpoint_iteration=2.pt").is_file() and (run_dir / "best.pt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    state, card, _ = load_model(run_dir / "model.pt")
    assert card["network"]["base_channels"] == 8 and card["preprocessing"]["image_size"] == 64
    assert card["training"]["iterations"] == 4 and card["training"]["calibration"]["healthy_images"] == 3
    assert card["training"]["data"] == {"manifest": str(manifest.resolve()), "train_images": 18, "train_disease": 9,
                                        "validation_images": 6}
    assert set(state) == set(checkpoint["generator"])

    report = tmp_path / "report"
    evaluator = workflow("evaluate.json", None, manifest=str(evaluation_manifest(tmp_path, phantom_folders.root)), split="test",
                         output_dir=str(report), model_path=str(run_dir / "model.pt"), device="cpu",
                         **{"evaluator#progress": False})
    evaluator.initialize()
    evaluator.run()
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["counts"]["images"] == 11 and metrics["counts"]["with_boxes"] == 5
    assert metrics["detection_auc"] is not None and metrics["pointing_game"] is not None
    assert metrics["model"]["model_sha256"] == card["sha256"]
    assert set(metrics["floors"]) == {"random_map", "lung_prior", "grey_level"}
    assert (report / "index.html").is_file()


def test_training_split_needs_validation_images(tmp_path: Path) -> None:
    records = [ManifestRecord(image=tmp_path / f"{i}.png", label=label, split="train")
               for i, label in enumerate(("healthy", "disease"))]
    with pytest.raises(DataError, match="no validation images"):
        training_split(records)


# -- the shipped model ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_shipped_model_fits_the_bundle() -> None:
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f"no shipped model yet: {SHIPPED_MODEL.relative_to(REPO_ROOT)} is added when the trained model "
                    "is released")
    state, card, _ = load_model(SHIPPED_MODEL)  # checksum checked against models/model.json
    network = HealthyTranslator.from_card(card)
    network.load_state_dict(state)
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    image_size = card["preprocessing"]["image_size"]
    for tensor in [*metadata["network_data_format"]["inputs"].values(), *metadata["network_data_format"]["outputs"].values()]:
        assert tensor["spatial_shape"] == [image_size, image_size]
    margin = card["preprocessing"]["margin"]
    assert -margin >= metadata["network_data_format"]["inputs"]["image"]["value_range"][0]
    missing = [name for name, value in metadata["eval_metrics"].items() if value is None]
    assert not missing, f"metadata.json eval_metrics {missing}: fill them from the shipped model's pilletgan evaluate"
    assert PLACEHOLDER not in (BUNDLE / "docs" / "README.md").read_text(), \
        "docs/README.md still has sections marked TO FILL: fill them from the shipped model's evaluation"
    infer = workflow("inference.json", "infer")
    infer.initialize()
    assert infer.parser.get_parsed_content("model_path") == f"{BUNDLE}/models/model.pt"
    assert infer.parser.get_parsed_content("image_size") == image_size


def test_shipped_baseline_is_the_fixed_point_gan_the_card_compares_with() -> None:
    baseline = BUNDLE / "models" / "baseline_fixed_point_gan.pt"
    if not baseline.is_file():
        pytest.skip(f"no shipped baseline: {baseline.relative_to(REPO_ROOT)} is added with the trained models")
    state, card, _ = load_model(baseline)  # checksum checked against its .json card
    assert card["network"]["attention"] == "none"
    HealthyTranslator.from_card(card).load_state_dict(state)
    assert "baseline_fixed_point_gan.pt" in (BUNDLE / "docs" / "README.md").read_text()
