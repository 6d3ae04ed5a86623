"""Coded terminology of the lesion segment, shared by the ``.seg.nrrd``, DICOM SEG and Slicer outputs.

The segment is a pneumonia opacity: category SCT 49755003 "Morphologically Abnormal Structure",
property type DCM 112001 "Opacity", anatomic region SCT 39607008 "Lung". Slicer stores such a
triplet as a terminology entry string (see :func:`slicer_terminology_entry`).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ANATOMIC_CONTEXT",
    "LESION_CATEGORY",
    "LESION_COLOR",
    "LESION_REGION",
    "LESION_SEGMENT_NAME",
    "LESION_TYPE",
    "SEGMENTATION_CONTEXT",
    "CodedTerm",
    "lesion_terminology",
    "slicer_terminology_entry",
]


class CodedTerm(NamedTuple):
    """A code: coding scheme designator, code value, code meaning."""

    scheme: str
    value: str
    meaning: str

    def slicer(self) -> str:
        """``SCHEME^VALUE^Meaning``, the form Slicer's terminology strings use."""
        return "^".join(self)


LESION_CATEGORY = CodedTerm("SCT", "49755003", "Morphologically Abnormal Structure")
LESION_TYPE = CodedTerm("DCM", "112001", "Opacity")
LESION_REGION = CodedTerm("SCT", "39607008", "Lung")
LESION_SEGMENT_NAME = "Lesion"
#: RGB in [0, 1].
LESION_COLOR = (0.9, 0.2, 0.1)
SEGMENTATION_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def lesion_terminology() -> dict[str, object]:
    """The lesion terminology as the dict ``slicerio`` reads and writes."""
    return {
        "contextName": SEGMENTATION_CONTEXT,
        "category": list(LESION_CATEGORY),
        "type": list(LESION_TYPE),
        "anatomicContextName": ANATOMIC_CONTEXT,
        "anatomicRegion": list(LESION_REGION),
    }


def slicer_terminology_entry(category: CodedTerm = LESION_CATEGORY, type_: CodedTerm = LESION_TYPE,
                             region: CodedTerm | None = LESION_REGION) -> str:
    """Slicer terminology entry string: ``context~category~type~modifier~anatomic context~region~modifier``."""
    empty = "^^"
    return "~".join((SEGMENTATION_CONTEXT, category.slicer(), type_.slicer(), empty, ANATOMIC_CONTEXT,
                     region.slicer() if region else empty, empty))
