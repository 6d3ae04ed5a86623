"""Datasets and manifests: one CSV format for training and evaluation, builders for public layouts."""

from .manifest import LABELS, SPLITS, ManifestRecord, read_manifest, select_split, write_manifest
from .sources import (
    build_folder_manifest,
    build_nih_manifest,
    build_rsna_manifest,
    build_siim_covid_manifest,
    format_summary,
)
from .splits import assign_splits, check_patient_disjoint, patient_key, split_by_folds
from .synthetic import mask_boxes, write_synthetic_dataset

__all__ = [
    "LABELS",
    "SPLITS",
    "ManifestRecord",
    "assign_splits",
    "build_folder_manifest",
    "build_nih_manifest",
    "build_rsna_manifest",
    "build_siim_covid_manifest",
    "check_patient_disjoint",
    "format_summary",
    "mask_boxes",
    "patient_key",
    "read_manifest",
    "select_split",
    "split_by_folds",
    "write_manifest",
    "write_synthetic_dataset",
]
