"""Coded terminology of the lesion segment, shared by the ``.seg.nrrd``, DICOM SEG and Slicer outputs.

The segment is a pneumonia opacity: category SCT 49755003 "Morphologically Abnormal Structure",
property type DCM 112001 "Opacity", anatomic region SCT 39607008 "Lung". Category and type are defined once, in
the Slicer terminology context shipped beside this module (``PilletGAN.term.json``, the format of Slicer's
Terminologies module); the Slicer module loads that file into Slicer, and the codes, colour and context name below
are read from it. The region is Slicer's own "Anatomic codes - DICOM master list". Slicer stores such a triplet as a
terminology entry string (see :func:`slicer_terminology_entry`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "ANATOMIC_CONTEXT",
    "LESION_CATEGORY",
    "LESION_COLOR",
    "LESION_REGION",
    "LESION_SEGMENT_NAME",
    "LESION_TYPE",
    "SEGMENTATION_CONTEXT",
    "TERMINOLOGY_FILE",
    "CodedTerm",
    "lesion_terminology",
    "slicer_terminology_entry",
]

#: The Slicer terminology context (``.term.json``) that defines the lesion's category and type.
TERMINOLOGY_FILE = Path(__file__).with_name("PilletGAN.term.json")


class CodedTerm(NamedTuple):
    """A code: coding scheme designator, code value, code meaning."""

    scheme: str
    value: str
    meaning: str

    def slicer(self) -> str:
        """``SCHEME^VALUE^Meaning``, the form Slicer's terminology strings use."""
        return "^".join(self)


def _code(entry: dict) -> CodedTerm:
    return CodedTerm(entry["CodingSchemeDesignator"], entry["CodeValue"], entry["CodeMeaning"])


_CONTEXT = json.loads(TERMINOLOGY_FILE.read_text(encoding="utf-8"))
_CATEGORY = _CONTEXT["SegmentationCodes"]["Category"][0]
_TYPE = _CATEGORY["Type"][0]

LESION_CATEGORY = _code(_CATEGORY)
LESION_TYPE = _code(_TYPE)
LESION_REGION = CodedTerm("SCT", "39607008", "Lung")
LESION_SEGMENT_NAME = "Lesion"
#: RGB in [0, 1]: the type's recommended display colour.
LESION_COLOR = tuple(round(value / 255.0, 4) for value in _TYPE["recommendedDisplayRGBValue"])
SEGMENTATION_CONTEXT = _CONTEXT["SegmentationCategoryTypeContextName"]
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
