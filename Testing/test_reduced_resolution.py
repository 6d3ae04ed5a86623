"""Images read at reduced resolution for the network (``load_cxr(path, network_size)``: JPEG 2000 decoded at a coarser
level of its pyramid, other pixel data averaged over blocks), the resampling of the reduced grid to the network and
back, and the reading workers that use it: what changes, what must not, and when the full read is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from dicom_factory import MONO1_J2K_LOSSLESS, MONO1_J2K_LOSSY, MONO1_SHAPE, MONO1_UNCOMPRESSED, SAMPLE_FILES
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless

from PilletGANLib import errors, load_cxr
from PilletGANLib.demo.phantom import make_phantom_radiograph
from PilletGANLib.demo.study import phantom_dataset
from PilletGANLib.dicom.reduced_resolution import area_reduce, reduced_shape, reduction_level
from PilletGANLib.inference.reading_workers import prepared_batches
from PilletGANLib.transforms.geometry import CXRGeometry
from PilletGANLib.transforms.pipeline import intensity_normalization, normalize_intensity, prepare_image
from PilletGANLib.transforms.working_grid import reduced_to_network, reduced_to_source

#: The largest network side for which the 320 x 288 samples are decoded at half resolution.
NETWORK = max(MONO1_SHAPE) // 4


def _close(full: np.ndarray, reduced: np.ndarray, level: int, correlation: float = 0.99) -> None:
    """``reduced`` is on the reduced grid of ``full`` and close to its block means."""
    assert reduced.shape == reduced_shape(full.shape, level)
    means = area_reduce(full, level)
    assert np.corrcoef(means.ravel(), reduced.ravel())[0, 1] > correlation


def _as_array(image: np.ndarray | object) -> np.ndarray:
    return image() if callable(image) else image


@pytest.mark.parametrize("name", [MONO1_J2K_LOSSLESS, MONO1_J2K_LOSSY])
def test_half_resolution_is_a_reduced_grid_close_to_the_full_decode(dicom_dir: Path, name: str) -> None:
    full, full_meta = load_cxr(dicom_dir / name)
    half, half_meta = load_cxr(dicom_dir / name, NETWORK)
    assert full_meta["reduced_resolution_level"] == 0 and half_meta["reduced_resolution_level"] == 1
    assert half_meta["original_shape"] == full_meta["original_shape"] == list(MONO1_SHAPE)
    _close(full, half, 1)
    # the window and the MONOCHROME1 inversion still apply: the same display range, air dark
    assert abs(float(half.max()) - float(full.max())) < 0.02 * float(np.ptp(full))
    assert half_meta["warnings"] == full_meta["warnings"] == []


def test_full_decode_below_four_times_the_network_side(dicom_dir: Path) -> None:
    full, _ = load_cxr(dicom_dir / MONO1_J2K_LOSSLESS)
    image, meta = load_cxr(dicom_dir / MONO1_J2K_LOSSLESS, NETWORK + 1)
    assert meta["reduced_resolution_level"] == 0
    np.testing.assert_array_equal(image, full)


def test_other_transfer_syntaxes_are_read_in_full_then_averaged_over_blocks(dicom_dir: Path) -> None:
    """Read through the LUTs and checked as a full read, then block means: exactly the full read's block means."""
    for name in SAMPLE_FILES:
        if name not in (MONO1_J2K_LOSSLESS, MONO1_J2K_LOSSY):
            full, full_meta = load_cxr(dicom_dir / name)
            image, meta = load_cxr(dicom_dir / name, 32)
            assert meta["reduced_resolution_level"] == 2, name
            np.testing.assert_array_equal(image, area_reduce(full, 2))
            assert meta["warnings"] == full_meta["warnings"], name


def _j2k_file(path: Path, pixels: np.ndarray, bits: int, signed: bool = False) -> Path:
    """A CR of ``pixels`` with ``bits`` stored, JPEG 2000 lossless by pydicom's encoder."""
    ds = phantom_dataset(make_phantom_radiograph(pixels.shape, seed=3))
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, int(signed)
    for keyword in ("WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = pixels.tobytes()
    ds.compress(JPEG2000Lossless, pixels)
    ds.save_as(path, enforce_file_format=True)
    return path


def _smooth(shape: tuple[int, int], bits: int) -> np.ndarray:
    rows, cols = np.mgrid[0: shape[0], 0: shape[1]]
    wave = 0.5 + 0.25 * np.sin(rows / 11.0) + 0.25 * np.cos(cols / 17.0)
    return np.rint(wave * (2 ** bits - 1)).astype(np.uint8 if bits <= 8 else np.uint16)


@pytest.mark.parametrize("bits", [6, 8, 12, 16])
def test_every_bit_depth_keeps_its_values(tmp_path: Path, bits: int) -> None:
    """Pillow widens samples to 8 or 16 bits; the reader must give back the stored range."""
    pixels = _smooth((203, 181), bits)
    path = _j2k_file(tmp_path / f"bits{bits}.dcm", pixels, bits)
    half, meta = load_cxr(path, 32)
    full, _ = load_cxr(path)
    assert meta["reduced_resolution_level"] == 1
    np.testing.assert_array_equal(full, pixels.astype(np.float32))
    assert np.abs(half - area_reduce(full, 1)).mean() < 0.01 * (2 ** bits - 1)
    _close(full, half, 1)


@pytest.mark.parametrize(("side", "network", "decompositions", "level"), [
    (511, 128, 5, 0), (512, 128, 5, 1), (1023, 128, 5, 1), (1024, 128, 5, 2), (1955, 128, 5, 2), (2048, 128, 5, 3),
    (4096, 128, 2, 2), (4096, 128, 0, 0), (1955, 256, 5, 1)])
def test_the_coarsest_level_keeps_two_decoded_pixels_per_network_pixel(side: int, network: int, decompositions: int,
                                                                        level: int) -> None:
    assert reduction_level(side, network, decompositions) == level


@pytest.mark.parametrize("shape", [(203, 181), (200, 180)])
def test_a_quarter_resolution_decode_of_any_width_stays_close(tmp_path: Path, shape: tuple[int, int]) -> None:
    """181 columns decode to ceil(181 / 4) = 46 at a quarter of the resolution, one more than Pillow's own
    arithmetic allots; 180 divides evenly."""
    path = _j2k_file(tmp_path / "quarter.dcm", _smooth(shape, 12), 12)
    quarter, meta = load_cxr(path, 16)
    full, _ = load_cxr(path)
    assert meta["reduced_resolution_level"] == 2
    _close(full, quarter, 2, correlation=0.98)


def test_a_real_radiograph_decodes_at_a_quarter_for_the_shipped_network_size(real_dicom_dir: Path) -> None:
    """1955 x 1841 read for a 128 px network: a quarter of the resolution, 0.034 against 0.45 s to decode on one
    core of the development machine. What the network reads differs by 0.008 on average over its range [-1, 1]."""
    path = real_dicom_dir / "RG1_J2KR.dcm"
    full, full_meta = load_cxr(path)
    quarter, meta = load_cxr(path, 128)
    assert (full_meta["reduced_resolution_level"], meta["reduced_resolution_level"]) == (0, 2)
    assert full.shape == (1955, 1841) and quarter.shape == (489, 461)
    _close(full, quarter, 2, correlation=0.995)
    seen = [prepare_image(image, m, 128, 1.0) for image, m in ((full, full_meta), (quarter, meta))]
    assert seen[0].geometry == seen[1].geometry == CXRGeometry(1955, 1841, 128)
    assert (seen[0].network_input - seen[1].network_input).abs().mean() < 0.01
    assert _as_array(seen[1].image).shape == full.shape


def test_signed_pixels_and_pixel_padding_decode_in_full_then_average_blocks(tmp_path: Path) -> None:
    """Neither takes the reduced JPEG 2000 decode: both are read in full, then averaged over blocks."""
    signed = _smooth((203, 181), 12).astype(np.int16) - 2048
    path = _j2k_file(tmp_path / "signed.dcm", signed, 12, signed=True)
    image, meta = load_cxr(path, 32)
    assert meta["reduced_resolution_level"] == 1
    np.testing.assert_array_equal(image, area_reduce(load_cxr(path)[0], 1))

    padded = pydicom.dcmread(_j2k_file(tmp_path / "padded.dcm", _smooth((203, 181), 12), 12))
    padded.add_new("PixelPaddingValue", "US", 0)
    padded.save_as(tmp_path / "padded.dcm")
    image, meta = load_cxr(tmp_path / "padded.dcm", 32)
    assert meta["reduced_resolution_level"] == 1
    np.testing.assert_array_equal(image, area_reduce(load_cxr(tmp_path / "padded.dcm")[0], 1))


@pytest.mark.parametrize("signed", [False, True])
def test_32_bit_values_at_the_ends_of_their_range_stay_there(tmp_path: Path, signed: bool) -> None:
    """Block means of 32-bit words near 2**32 - 1 (or 2**31 - 1), rounded back to the word type, would wrap to the
    other end (float32 rounds them up past the type): the brightest pixels would read black."""
    words = (_smooth((203, 181), 16).astype(np.uint32) << 16) | 0xFFFF
    words[100:110, 100:110] = 0xFFFFFFFF  # whole blocks at the top of the range
    pixels = (words ^ 0x80000000).view(np.int32) if signed else words
    ds = phantom_dataset(make_phantom_radiograph(pixels.shape, seed=3))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, int(signed)
    for keyword in ("WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = pixels.tobytes()
    ds.save_as(tmp_path / "wide.dcm", enforce_file_format=True)
    full, _ = load_cxr(tmp_path / "wide.dcm")
    reduced, meta = load_cxr(tmp_path / "wide.dcm", 32)
    assert meta["reduced_resolution_level"] == 1
    np.testing.assert_array_equal(reduced, area_reduce(full, 1))
    assert reduced[50:55, 50:55].min() == full.max()


def test_a_bitmap_is_refused_as_a_full_read_refuses_it(tmp_path: Path) -> None:
    """Block means of a two-level image hold 17 levels: the checks must see the image before it is averaged."""
    ds = phantom_dataset(make_phantom_radiograph((256, 256), seed=3))
    pixels = ds.pixel_array
    ds.PixelData = np.where(pixels > np.median(pixels), pixels.max(), 0).astype(pixels.dtype).tobytes()
    ds.save_as(tmp_path / "bitmap.dcm", enforce_file_format=True)
    with pytest.raises(errors.NotAnImageError) as full:
        load_cxr(tmp_path / "bitmap.dcm")
    with pytest.raises(errors.NotAnImageError) as reduced:
        load_cxr(tmp_path / "bitmap.dcm", 32)
    assert str(reduced.value) == str(full.value) and "2 grey levels" in str(full.value)


def test_damaged_codestream_gets_the_full_decoders_error(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / MONO1_J2K_LOSSLESS)
    codestream = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    body = len(codestream) // 3
    codestream[body:] = bytes(len(codestream) - body)  # the packets after the headers zeroed
    ds.PixelData = encapsulate([bytes(codestream)])
    ds.save_as(tmp_path / "damaged.dcm")
    with pytest.raises(errors.PilletGANError) as full:
        load_cxr(tmp_path / "damaged.dcm")
    with pytest.raises(errors.PilletGANError) as half:
        load_cxr(tmp_path / "damaged.dcm", NETWORK)
    assert type(half.value) is type(full.value) and str(half.value) == str(full.value)


def test_one_pass_normalization_equals_monais_transform(dicom_dir: Path) -> None:
    """Equal where MONAI takes ``np.percentile`` too (over a million pixels); below, MONAI's ``torch.quantile``
    interpolates in float32."""
    for name in (MONO1_UNCOMPRESSED, MONO1_J2K_LOSSY):
        image = torch.from_numpy(load_cxr(dicom_dir / name)[0])[None]
        large = image.repeat(1, 4, 4)
        for margin in (1.0, 0.9):
            expected = intensity_normalization("image", margin)({"image": large})["image"]
            assert torch.equal(torch.as_tensor(normalize_intensity(large, margin)), torch.as_tensor(expected))
            expected = intensity_normalization("image", margin)({"image": image})["image"]
            torch.testing.assert_close(torch.as_tensor(normalize_intensity(image, margin)), torch.as_tensor(expected),
                                       atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="margin"):
        normalize_intensity(image, 0.0)


@pytest.mark.parametrize("workers", [0, 2])
def test_reading_workers_keep_order_errors_and_arrays(dicom_dir: Path, tmp_path: Path, workers: int) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not an image at all")
    paths = [dicom_dir / MONO1_J2K_LOSSLESS, broken, dicom_dir / MONO1_UNCOMPRESSED, dicom_dir / MONO1_J2K_LOSSY,
             dicom_dir / MONO1_J2K_LOSSLESS]
    batches = list(prepared_batches(paths, NETWORK, 1.0, batch_size=2, num_workers=workers))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    outcomes = [outcome for batch in batches for outcome in batch]
    assert [path for path, _ in outcomes] == paths
    assert isinstance(outcomes[1][1], errors.PilletGANError) and str(broken) in str(outcomes[1][1])
    for path, prepared in outcomes[:1] + outcomes[2:]:
        expected = prepare_image(*load_cxr(path, NETWORK), NETWORK, 1.0)
        np.testing.assert_array_equal(_as_array(prepared.image), _as_array(expected.image))
        assert _as_array(prepared.image).shape == MONO1_SHAPE  # on the source grid once read
        assert torch.equal(prepared.network_input, expected.network_input)
        assert prepared.geometry == expected.geometry and prepared.meta == expected.meta
        assert _as_array(prepared.image).flags.writeable
    assert outcomes[0][1].meta["reduced_resolution_level"] == 1
    exact = next(iter(prepared_batches(paths[:1], NETWORK, 1.0, 1, workers, reduced_resolution=False)))[0][1]
    assert exact.meta["reduced_resolution_level"] == 0


def test_reading_workers_leave_source_images_behind_when_asked(dicom_dir: Path) -> None:
    paths = [dicom_dir / MONO1_J2K_LOSSLESS, dicom_dir / MONO1_UNCOMPRESSED]
    kept = [item for batch in prepared_batches(paths, NETWORK, 1.0, 2, 2) for _, item in batch]
    left = [item for batch in prepared_batches(paths, NETWORK, 1.0, 2, 2, source_images=False) for _, item in batch]
    for with_image, without in zip(kept, left, strict=True):
        assert callable(without.image)  # read again on demand, the same pixels the worker had
        np.testing.assert_array_equal(without.image(), _as_array(with_image.image))
        assert torch.equal(without.network_input, with_image.network_input)
        assert without.geometry == with_image.geometry and without.meta == with_image.meta
    in_process = next(iter(prepared_batches(paths[:1], NETWORK, 1.0, 1, 0, source_images=False)))[0][1]
    assert in_process.image.func is reduced_to_source  # nothing to save without workers: resampled, not read again


def test_block_means_average_the_pixels_a_cut_block_holds() -> None:
    image = np.arange(35, dtype=np.float32).reshape(5, 7)
    reduced = area_reduce(image, 1)
    assert reduced.shape == reduced_shape(image.shape, 1) == (3, 4)
    assert reduced[0, 0] == image[:2, :2].mean() and reduced[2, 3] == image[4, 6]
    assert reduced[2, 0] == image[4, :2].mean() and reduced[0, 3] == image[:2, 6].mean()


@pytest.mark.parametrize(("shape", "size", "level"), [((512, 384), 64, 1), ((384, 512), 64, 2), ((256, 256), 32, 3)])
def test_the_network_input_from_block_means_is_the_full_images_area_resize(shape: tuple[int, int], size: int,
                                                                           level: int) -> None:
    """Where every block lies inside one network pixel (sides and padding multiples of the block), the reduced
    grid's area resampling gives what the full image's area resize gives."""
    image = torch.from_numpy(np.random.default_rng(0).random(shape, dtype=np.float32))[None]
    geometry = CXRGeometry(*shape, size)
    reduced = torch.from_numpy(area_reduce(image[0].numpy(), level))[None]
    torch.testing.assert_close(reduced_to_network(reduced, geometry, level, -1.0),
                               geometry.image_to_network(image, pad_value=-1.0), atol=1e-5, rtol=0)


def test_the_network_input_of_an_odd_grid_keeps_the_source_geometry() -> None:
    """A 203 x 181 image whose blocks straddle network pixels: a ramp along the columns lands where the full
    image's resize puts it (within the error of the resize's own integer bins)."""
    rows, cols = np.mgrid[0:203, 0:181].astype(np.float32)
    geometry = CXRGeometry(203, 181, 32)
    for ramp in (rows, cols):
        full = geometry.image_to_network(torch.from_numpy(ramp)[None], pad_value=0.0)
        for level in (1, 2):
            reduced = reduced_to_network(torch.from_numpy(area_reduce(ramp, level))[None], geometry, level, 0.0)
            inside = torch.from_numpy(geometry.valid_mask())
            assert (reduced - full)[0][inside].abs().max() < 3.0  # source pixels; a network pixel is 6.3
    with pytest.raises(ValueError, match="203 x 181 image at 1 halvings is 102 x 91"):
        reduced_to_network(torch.zeros(1, 101, 91), geometry, 1, 0.0)


def test_the_reduced_image_goes_back_to_the_source_grid_for_display() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert reduced_to_source(image, (3, 4), 0) is image
    full = reduced_to_source(image, (5, 7), 1)
    assert full.shape == (5, 7) and full.min() >= image.min() and full.max() <= image.max()
    assert full[2:4, 2:4].mean() == pytest.approx(image[1, 1])  # a linear image: inner blocks average back exactly


_ABANDONED_SESSION = """
import gc, sys
from pathlib import Path
import torch
import PilletGANLib.inference.reading_workers as reading_workers
from PilletGANLib.inference import Predictor

predictor = Predictor.from_path(sys.argv[1], device="cpu", backend="onnxruntime")
predictor.translate(torch.zeros(1, 1, predictor.image_size, predictor.image_size))
held = [predictor]
held.append(held)
gc.collect()  # the cycle survives into the oldest generation while it is held ...
del predictor, held  # ... and is left there as garbage: an ONNX Runtime session with its thread pool
gc.disable()  # not collected here before the workers start


def collecting(*args):
    gc.collect()  # in a worker: a collection, as a worker's allocations may start one at any time
    return read(*args)


read, reading_workers.load_cxr = reading_workers.load_cxr, collecting
batches = reading_workers.prepared_batches([Path(p) for p in sys.argv[2:]], 32, 1.0, batch_size=2, num_workers=2)
print(sum(len(batch) for batch in batches))
"""


def test_workers_never_collect_the_parents_onnx_runtime_sessions(tmp_path: Path, dicom_dir: Path,
                                                                  tiny_model: Path) -> None:
    """A worker forked while an abandoned ONNX Runtime session waits for the collector would destroy it, and its
    thread pool's condition variables wait forever for threads the fork did not copy: the batch hangs. Workers must
    leave whatever they inherit to the parent."""
    import subprocess
    import sys

    paths = [str(dicom_dir / name) for name in (MONO1_J2K_LOSSLESS, MONO1_UNCOMPRESSED)]
    script = tmp_path / "abandoned.py"
    script.write_text(_ABANDONED_SESSION)
    done = subprocess.run([sys.executable, str(script), str(tiny_model), *paths], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "2"
