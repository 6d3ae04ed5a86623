"""DIMSE with ``pynetdicom``: DICOM node addresses and C-STORE of files to a node.

:func:`send_files` opens one association, C-STOREs each file and says which the node stored.
Failures that concern the whole association (connection refused, association rejected or aborted,
timeout) raise :class:`PacsError` naming the node and the cause; a file the node refuses is reported
with its status and comment and the others go on.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.status import code_to_category

from ..errors import ConfigurationError, PacsError

__all__ = ["DicomNode", "StoreResult", "send_files", "valid_ae_title"]

logger = logging.getLogger(__name__)

#: AE titles: 1-16 characters of the default character repertoire, no backslash or control characters.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def valid_ae_title(title: str) -> str:
    """``title`` without padding, or :class:`ConfigurationError` when it cannot be an AE title."""
    stripped = title.strip()
    if not stripped or not _AE_TITLE.match(stripped):
        raise ConfigurationError(f"{title!r} is not an AE title (1-16 printable characters, no backslash)")
    return stripped


@dataclass(frozen=True)
class DicomNode:
    """A DICOM node: AE title, host and port."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> DicomNode:
        """``AE@HOST:PORT`` (``AE@[::1]:PORT`` for an IPv6 address)."""
        ae_title, at, address = text.partition("@")
        host, colon, port = address.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        if not at or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"{text!r} is not a DICOM node AE@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
        return cls(valid_ae_title(ae_title), host, int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


@dataclass(frozen=True)
class StoreResult:
    """One file's C-STORE outcome: ``status`` 0x0000 (or a warning) means stored."""

    path: Path
    sop_instance_uid: str
    status: int | None
    comment: str = ""

    @property
    def stored(self) -> bool:
        return self.status is not None and code_to_category(self.status) in ("Success", "Warning")

    def describe(self) -> str:
        if self.status is None:
            return self.comment
        text = f"status 0x{self.status:04X} ({code_to_category(self.status)})"
        return f"{text}: {self.comment}" if self.comment else text


def _connection_cause(node: DicomNode, timeout: float) -> str:
    """Why no association could be opened, as the network says it (refused, unreachable, timed out)."""
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout):
            return f"no answer to the association request within {timeout:g} s (timeout)"
    except OSError as err:
        return f"cannot connect to {node.host}:{node.port} ({err.strerror or err})"


def send_files(node: DicomNode, paths: Sequence[Path], calling_ae_title: str, timeout: float = 30.0
               ) -> list[StoreResult]:
    """C-STORE ``paths`` (DICOM files) to ``node`` over one association; one result per file, in order.

    Each SOP class is proposed in the file's own transfer syntax and in both uncompressed ones, each syntax in a
    context of its own, so the node can accept exactly the ones it stores. A file without an answer has status
    ``None`` and a comment saying why: no context the node accepted can carry it, or the association was lost
    (then so are the files after it).

    Raises:
        PacsError: no association: connection refused, association rejected or aborted, timeout.
    """
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    contexts = sorted({(str(header.SOPClassUID), syntax) for header in headers
                       for syntax in (str(header.file_meta.TransferSyntaxUID), ExplicitVRLittleEndian,
                                      ImplicitVRLittleEndian)})
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    if assoc.is_rejected:
        answer = assoc.acceptor.primitive
        raise PacsError(f"association rejected ({answer.result_str}, source: {answer.source_str}, "
                        f"reason: {answer.reason_str})", str(node))
    if not assoc.is_established:
        cause = "association aborted by the node" if assoc.acceptor.primitive is not None else \
            _connection_cause(node, timeout)
        raise PacsError(f"no association: {cause}", str(node))
    results: list[StoreResult] = []
    try:
        for path, header in zip(paths, headers, strict=True):
            try:
                answer = assoc.send_c_store(path) if assoc.is_established else None
            except ValueError as err:  # pynetdicom's: no accepted context can carry the file as it is stored
                results.append(StoreResult(path, str(header.SOPInstanceUID), None, f"not sent: {err}"))
                continue
            status = answer.get("Status") if answer else None
            comment = str(answer.get("ErrorComment", "") or "") if answer else \
                "no answer: association lost (aborted or timed out)"
            results.append(StoreResult(path, str(header.SOPInstanceUID), None if status is None else int(status),
                                       comment))
    finally:
        if assoc.is_established:
            assoc.release()
    return results
