"""Datasets and manifests: one CSV format for training and evaluation, builders for public layouts."""

from .manifest import LABELS, SPLITS, ManifestRecord, read_manifest, select_split, write_manifest

__all__ = ["LABELS", "SPLITS", "ManifestRecord", "read_manifest", "select_split", "write_manifest"]
