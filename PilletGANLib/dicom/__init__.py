"""DICOM input and output: reading radiographs, finding them in exports, writing results."""

from .reader import read_dicom_header, read_dicom_image

__all__ = ["read_dicom_header", "read_dicom_image"]
