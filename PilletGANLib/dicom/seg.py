"""Write lesion maps as DICOM Segmentation objects (highdicom) that reference their source radiograph.

Two objects per source image, because one Segmentation cannot mix BINARY and FRACTIONAL segments:

- :func:`write_lesion_seg`: the BINARY lesion mask (one segment);
- :func:`write_heatmap_seg`: the lesion heat map as a FRACTIONAL segment (8 bits, type PROBABILITY;
  the values are the normalized lesion map, not a calibrated probability), in a series of its own.

Both are in the source pixel grid, reference the source SOP Instance, and carry the codes of the
design (category SCT 49755003, type DCM 112001 "Opacity" by default, region SCT 39607008 "Lung") and
an algorithm identification (name, version, family "Artificial Intelligence", optional parameters).
UIDs are derived deterministically: every SEG of one source series and one algorithm version goes
into the same SEG series, and rewriting the SEG of one source instance reuses its SOP Instance UID.
Patient and study attributes come from :func:`repair_source_header`, so broken source headers never
propagate. Files are written to a temporary name in the target folder (``.<name>.<pid>.<hex>.tmp``) and
renamed when complete.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from ..errors import OutputError
from ..version import __version__
from .attributes import repair_source_header
from .codes import ARTIFICIAL_INTELLIGENCE, LUNG, MORPHOLOGICALLY_ABNORMAL_STRUCTURE, OPACITY
from .reader import check_radiograph_header, read_dicom_header
from .uids import derived_uid

__all__ = [
    "HEATMAP_SERIES_NUMBER",
    "LESION_SERIES_NUMBER",
    "Algorithm",
    "seg_instance_uid",
    "seg_series_uid",
    "write_heatmap_seg",
    "write_lesion_seg",
]

#: Default Series Number of the binary lesion-mask SEG series (high, so viewers list it after the images).
LESION_SERIES_NUMBER = 9001
#: Default Series Number of the fractional heat-map SEG series.
HEATMAP_SERIES_NUMBER = 9002
#: Kinds of SEG written per source image.
_LESION, _HEATMAP = "lesion", "heatmap"
#: Recommended display colours (CIELab from sRGB): red mask, orange heat map.
_LESION_COLOUR = hd.color.CIELabColor.from_rgb(230, 25, 25)
_HEATMAP_COLOUR = hd.color.CIELabColor.from_rgb(255, 140, 0)


@dataclass(frozen=True)
class Algorithm:
    """Identification of the algorithm that made the segmentation (stored in every segment)."""

    name: str = "PilletGAN"
    version: str = __version__
    #: e.g. ``{"model_sha256": ..., "threshold": "0.42"}``; values are stored as text.
    parameters: Mapping[str, str] = field(default_factory=dict)

    def identification(self, manufacturer: str) -> hd.AlgorithmIdentificationSequence:
        return hd.AlgorithmIdentificationSequence(
            name=self.name, family=ARTIFICIAL_INTELLIGENCE, version=self.version, source=manufacturer,
            parameters={str(k): str(v) for k, v in self.parameters.items()} or None)


def seg_series_uid(source_series_uid: str, algorithm: Algorithm, kind: str = _LESION) -> str:
    """Series Instance UID of the SEGs of one source series (``kind`` is ``"lesion"`` or ``"heatmap"``)."""
    return derived_uid("seg-series", kind, source_series_uid, algorithm.name, algorithm.version)


def seg_instance_uid(source_sop_instance_uid: str, algorithm: Algorithm, kind: str = _LESION) -> str:
    """SOP Instance UID of the SEG of one source instance (``kind`` is ``"lesion"`` or ``"heatmap"``)."""
    return derived_uid("seg-instance", kind, source_sop_instance_uid, algorithm.name, algorithm.version)


def write_lesion_seg(
    source: str | os.PathLike | Dataset,
    mask: np.ndarray,
    out_path: str | os.PathLike,
    *,
    algorithm: Algorithm | None = None,
    property_type: Code = OPACITY,
    segment_label: str = "Lesion",
    series_number: int = LESION_SERIES_NUMBER,
    series_description: str = "PilletGAN lesion map",
    manufacturer: str = "PilletGAN",
    sop_instance_uid: str | None = None,
) -> Path:
    """Write the binary lesion ``mask`` (``rows x cols`` of the source, bool or 0/1) as a BINARY SEG.

    ``source`` is the radiograph's path or its (header) dataset; it is only read. An empty mask
    gives a valid SEG with one all-zero frame ("nothing found" is a result too). Returns ``out_path``.
    Raises :class:`~PilletGANLib.errors.PilletGANError` subclasses: the source's reading errors,
    :class:`~PilletGANLib.errors.CorruptFileError` for unusable references in its header,
    :class:`~PilletGANLib.errors.OutputError` for a mask that does not fit or a file that cannot be written.
    """
    header, path = _source_header(source)
    out_path = Path(out_path)
    pixels = _binary_mask(mask, header, out_path)
    return _write(header, path, pixels, out_path, kind=_LESION, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                  algorithm=algorithm or Algorithm(), property_type=property_type, segment_label=segment_label,
                  series_number=series_number, series_description=series_description, manufacturer=manufacturer,
                  sop_instance_uid=sop_instance_uid)


def write_heatmap_seg(
    source: str | os.PathLike | Dataset,
    heatmap: np.ndarray,
    out_path: str | os.PathLike,
    *,
    algorithm: Algorithm | None = None,
    property_type: Code = OPACITY,
    segment_label: str = "Lesion heat map",
    series_number: int = HEATMAP_SERIES_NUMBER,
    series_description: str = "PilletGAN lesion heat map",
    manufacturer: str = "PilletGAN",
    sop_instance_uid: str | None = None,
) -> Path:
    """Write the lesion ``heatmap`` (float ``rows x cols`` in [0, 1]) as a FRACTIONAL SEG (8-bit, 255 = 1.0).

    Same source, codes and safety as :func:`write_lesion_seg`, in its own SEG series.
    """
    header, path = _source_header(source)
    out_path = Path(out_path)
    pixels = _fractional_map(heatmap, header, out_path)
    return _write(header, path, pixels, out_path, kind=_HEATMAP,
                  segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL, algorithm=algorithm or Algorithm(),
                  property_type=property_type, segment_label=segment_label, series_number=series_number,
                  series_description=series_description, manufacturer=manufacturer, sop_instance_uid=sop_instance_uid)


def _source_header(source: str | os.PathLike | Dataset) -> tuple[Dataset, Path | None]:
    if isinstance(source, Dataset):
        filename = getattr(source, "filename", None)
        path = Path(filename) if isinstance(filename, str | os.PathLike) else None
        header = source
    else:
        path = Path(source)
        header = read_dicom_header(path)
    check_radiograph_header(header, path)
    return header, path


def _check_shape(array: np.ndarray, header: Dataset, what: str, out_path: Path) -> None:
    expected = (int(header.Rows), int(header.Columns))
    if array.shape != expected:
        raise OutputError(f"the {what} is {'x'.join(map(str, array.shape))} but the source image is "
                          f"{expected[0]}x{expected[1]}; map it back onto the source pixel grid first", out_path)


def _binary_mask(mask: np.ndarray, header: Dataset, out_path: Path) -> np.ndarray:
    mask = np.asarray(mask)
    _check_shape(mask, header, "lesion mask", out_path)
    if mask.dtype != bool and not (np.issubdtype(mask.dtype, np.integer) and np.isin(mask, (0, 1)).all()):
        raise OutputError(f"the lesion mask must be boolean or 0/1 integers, not {mask.dtype} values", out_path)
    return mask.astype(bool)


def _fractional_map(heatmap: np.ndarray, header: Dataset, out_path: Path) -> np.ndarray:
    heatmap = np.asarray(heatmap)
    _check_shape(heatmap, header, "heat map", out_path)
    if not np.issubdtype(heatmap.dtype, np.floating) or not np.isfinite(heatmap).all() \
            or heatmap.min() < 0.0 or heatmap.max() > 1.0:
        raise OutputError("the heat map must hold finite floating-point values in [0, 1]", out_path)
    # highdicom expects the stacked-segments form (frames, rows, columns, segments) for fractional values
    return heatmap.astype(np.float32)[np.newaxis, :, :, np.newaxis]


def _write(header: Dataset, path: Path | None, pixels: np.ndarray, out_path: Path, *, kind: str,
           segmentation_type: hd.seg.SegmentationTypeValues, algorithm: Algorithm, property_type: Code,
           segment_label: str, series_number: int, series_description: str, manufacturer: str,
           sop_instance_uid: str | None) -> Path:
    source = repair_source_header(header, path).dataset
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label,
        segmented_property_category=MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        segmented_property_type=property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm.identification(manufacturer),
        anatomic_regions=[LUNG],
        display_color=_LESION_COLOUR if kind == _LESION else _HEATMAP_COLOUR,
    )
    try:
        with warnings.catch_warnings():
            # highdicom warns about single-component person names, quoting them: keep patient names out of logs
            warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
            seg = hd.seg.Segmentation(
                source_images=[source],
                pixel_array=pixels,
                segmentation_type=segmentation_type,
                segment_descriptions=[description],
                series_instance_uid=seg_series_uid(source.SeriesInstanceUID, algorithm, kind),
                series_number=series_number,
                sop_instance_uid=sop_instance_uid or seg_instance_uid(source.SOPInstanceUID, algorithm, kind),
                instance_number=_instance_number(source),
                manufacturer=manufacturer,
                manufacturer_model_name="PilletGANLib",
                software_versions=__version__,
                device_serial_number=__version__,  # software has no serial number; its version identifies the build
                fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
                max_fractional_value=255,
                content_label="LESION_MAP" if kind == _LESION else "LESION_HEATMAP",
                content_description=series_description,
                series_description=series_description,
                omit_empty_frames=False,
            )
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise OutputError(f"highdicom cannot build the Segmentation ({type(err).__name__}: {err})", out_path) from err
    # Type 2C in the General Image module: required because a projection radiograph has no Image Orientation (Patient)
    seg.PatientOrientation = source.get("PatientOrientation", "")
    _save_atomically(seg, out_path)
    return out_path


def _instance_number(source: Dataset) -> int:
    """The source's Instance Number when it is a positive integer, else 1."""
    try:
        number = int(source.get("InstanceNumber") or 1)
    except (TypeError, ValueError):
        return 1
    return number if number > 0 else 1


def _save_atomically(dataset: Dataset, out_path: Path) -> None:
    """Write to a temporary file in the target folder, then rename it to ``out_path``."""
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as handle:
            dataset.save_as(handle)
        os.replace(tmp, out_path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"the SEG file cannot be written ({err})", out_path) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
