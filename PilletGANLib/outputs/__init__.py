"""Per-image output writers: heat map and mask volumes, Slicer segmentation, overlay PNG, JSON record."""

from .atomic import atomic_path
from .naming import FORMATS, RESULT_SUFFIXES, name_digest, output_stem, result_file_names, whole_name_stem
from .overlay import NO_FINDING, RESEARCH_BANNER, OverlayCaption, overlay_rgb, write_overlay_png
from .records import json_ready, write_record_json
from .result_files import DEFAULT_FORMATS, overlay_caption, write_result_files
from .segnrrd import write_seg_nrrd
from .terminology import CodedTerm, lesion_terminology, slicer_terminology_entry
from .volumes import write_volume

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "NO_FINDING",
    "RESEARCH_BANNER",
    "RESULT_SUFFIXES",
    "CodedTerm",
    "OverlayCaption",
    "atomic_path",
    "json_ready",
    "lesion_terminology",
    "name_digest",
    "output_stem",
    "overlay_caption",
    "overlay_rgb",
    "result_file_names",
    "slicer_terminology_entry",
    "whole_name_stem",
    "write_overlay_png",
    "write_record_json",
    "write_result_files",
    "write_seg_nrrd",
    "write_volume",
]
