"""Manifest builders for public chest X-ray layouts: RSNA, NIH ChestX-ray14, SIIM-FISABIO-RSNA COVID-19, class folders."""

from .folders import DEFAULT_PATIENT_PATTERN, build_folder_manifest, folder_label
from .nih import NIH_DEFAULT_FINDINGS, build_nih_manifest
from .rsna import build_rsna_manifest
from .siim import build_siim_covid_manifest, detect_siim_layout
from .summary import format_summary

__all__ = [
    "DEFAULT_PATIENT_PATTERN",
    "NIH_DEFAULT_FINDINGS",
    "build_folder_manifest",
    "build_nih_manifest",
    "build_rsna_manifest",
    "build_siim_covid_manifest",
    "detect_siim_layout",
    "folder_label",
    "format_summary",
]
