"""PACS network front doors: pull from and push to a DICOMweb PACS, and a DICOM node that analyses what it receives.

- :func:`run_pacs` (``pilletgan pacs``): QIDO-RS query, WADO-RS retrieval, the batch analysis and outputs, STOW-RS
  of the SEGs (:class:`DicomwebPacs` on ``dicomweb-client``; credentials by :func:`pacs_session`).
- :class:`DicomListener` (``pilletgan listen``): a Storage SCP (``pynetdicom``) with on-disk queues that
  analyses each radiograph it receives and C-STOREs the SEG to a forward node.

Both reuse :mod:`PilletGANLib.batch` (per-instance outputs, records, ``summary.csv`` / ``errors.csv`` /
``run.json``, resume). :class:`LocalOrthanc` runs a throwaway Orthanc for the demo (``python -m
PilletGANLib.pacs.demo DIR``), the benchmark and the tests. See ``docs/pacs.md``.
"""

from .credentials import PASSWORD_VARIABLE, TOKEN_VARIABLE, USER_VARIABLE, pacs_session
from .dicomweb import DicomwebPacs, PacsQuery, RemoteInstance, describe_http_failure
from .dimse import DicomNode, StoreResult, send_files, valid_ae_title
from .listener import JOURNAL_NAME, DicomListener
from .local_orthanc import LocalOrthanc
from .pull import PUSH_COLUMNS, RETRIEVED_FOLDER, PushOutcome, resource_of, retrieved_path, run_pacs
from .spool import Spool, item_tag

__all__ = [
    "JOURNAL_NAME",
    "PASSWORD_VARIABLE",
    "PUSH_COLUMNS",
    "RETRIEVED_FOLDER",
    "TOKEN_VARIABLE",
    "USER_VARIABLE",
    "DicomListener",
    "DicomNode",
    "DicomwebPacs",
    "LocalOrthanc",
    "PacsQuery",
    "PushOutcome",
    "RemoteInstance",
    "Spool",
    "StoreResult",
    "describe_http_failure",
    "item_tag",
    "pacs_session",
    "resource_of",
    "retrieved_path",
    "run_pacs",
    "send_files",
    "valid_ae_title",
]
