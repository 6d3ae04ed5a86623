"""Coded concepts PilletGAN writes into DICOM objects (SNOMED CT and DICOM codes from the design)."""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

__all__ = [
    "ARTIFICIAL_INTELLIGENCE",
    "LUNG",
    "MORPHOLOGICALLY_ABNORMAL_STRUCTURE",
    "OPACITY",
    "PNEUMONIA",
]

#: Segmented property category of every lesion segment (CID 7150).
MORPHOLOGICALLY_ABNORMAL_STRUCTURE: Code = codes.SCT.MorphologicallyAbnormalStructure  # SCT 49755003
#: Default segmented property type: what the lesion map shows on a radiograph (DCM 112001).
OPACITY: Code = codes.DCM.Opacity
#: Alternative property type when the segment is reported as the disease itself (not in pydicom's dictionary).
PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
#: Anatomic region of the segments.
LUNG: Code = codes.SCT.Lung  # SCT 39607008
#: Algorithm family (CID 7162) of the algorithm identification.
ARTIFICIAL_INTELLIGENCE: Code = codes.cid7162.ArtificialIntelligence  # DCM 123110
