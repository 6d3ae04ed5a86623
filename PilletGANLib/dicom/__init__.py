"""DICOM input and output: reading radiographs, finding them in exports, writing results."""

from .discovery import DicomInstance, DiscoveryResult, SelectionRules, SkipKind, SkippedFile, discover, examine_file
from .reader import check_decodable, check_radiograph_header, read_dicom_header, read_dicom_image
from .seg import Algorithm, seg_instance_uid, seg_series_uid, write_heatmap_seg, write_lesion_seg
from .uids import is_lenient_uid, safe_uid_name, uid_path

__all__ = [
    "Algorithm",
    "DicomInstance",
    "DiscoveryResult",
    "SelectionRules",
    "SkipKind",
    "SkippedFile",
    "check_decodable",
    "check_radiograph_header",
    "discover",
    "examine_file",
    "is_lenient_uid",
    "read_dicom_header",
    "read_dicom_image",
    "safe_uid_name",
    "seg_instance_uid",
    "seg_series_uid",
    "uid_path",
    "write_heatmap_seg",
    "write_lesion_seg",
]
