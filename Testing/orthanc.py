"""A real Orthanc PACS for tests (:class:`~PilletGANLib.pacs.local_orthanc.LocalOrthanc`: free loopback ports, a
generated configuration, never the service), the radiographs to put in it, and HTTPS in front of it.

Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``.ci/run`` installs them); a test that needs
Orthanc skips with a message when it is not installed. Each :class:`Orthanc` keeps its database in its
own folder, so a stopped server can be started again with the same content.

Debian's Orthanc 1.10 crashes on the first TLS handshake (``SslEnabled``), so HTTPS tests put
:class:`TlsProxy` (Python's ``ssl``, a self-signed certificate) in front of its plain HTTP port.
"""

from __future__ import annotations

import selectors
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from PilletGANLib.pacs.local_orthanc import LocalOrthanc, dicomweb_plugin, free_port, orthanc_binary, wait_for_port

__all__ = ["PASSWORD", "USER", "Orthanc", "TlsProxy", "free_port", "require_orthanc", "self_signed_certificate",
           "wait_for_port", "write_radiographs"]

USER, PASSWORD = "pillet", "orthanc-test-secret"


def require_orthanc() -> None:
    """Skip the calling test, saying how to get them, when Orthanc or its DICOMweb plugin is not installed."""
    if orthanc_binary() is None or dicomweb_plugin() is None:
        pytest.skip("Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb; .ci/run installs them)")


def write_radiographs(dicom_dir: Path, folder: Path) -> dict[str, Path]:
    """Six of the project's sample radiographs (``dicom_factory``; five transfer syntaxes) under new UIDs in three
    studies, the MONOCHROME1 ones in two series; returns SOP Instance UID -> file."""
    from dicom_factory import (
        DX_8BIT,
        JPEG_BASELINE,
        JPEG_HEADER_MONO1,
        MONO1_J2K_LOSSLESS,
        MONO1_J2K_LOSSY,
        MONO1_UNCOMPRESSED,
        write_copy,
    )

    studies = [generate_uid() for _ in range(3)]
    series = [generate_uid() for _ in range(4)]
    placement = {MONO1_UNCOMPRESSED: (0, 0), MONO1_J2K_LOSSLESS: (0, 0), MONO1_J2K_LOSSY: (0, 1),
                 JPEG_BASELINE: (1, 2), JPEG_HEADER_MONO1: (1, 2), DX_8BIT: (2, 3)}
    written = {}
    for name, (study, serie) in placement.items():
        ds = write_copy(dicom_dir, name, folder / name, studies[study], series[serie])
        written[str(ds.SOPInstanceUID)] = folder / name
    return written


@dataclass
class Orthanc(LocalOrthanc):
    """The test PACS: :class:`LocalOrthanc` with the test user; skips the test when Orthanc is not installed."""

    user: str = USER
    password: str = PASSWORD

    def start(self, timeout: float = 60.0) -> Orthanc:
        require_orthanc()
        return super().start(timeout)

    def download(self, instance_id: str, target: Path) -> pydicom.Dataset:
        answer = self.rest("get", f"/instances/{instance_id}/file")
        answer.raise_for_status()
        target.write_bytes(answer.content)
        return pydicom.dcmread(target)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by ``openssl`` (skips without it); returns (cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (.ci/run installs it); it makes the test PACS's TLS certificate")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class TlsProxy(socketserver.ThreadingTCPServer):
    """HTTPS on a free loopback port, relaying every connection to a plain TCP port (``with`` stops it)."""

    daemon_threads = True
    block_on_close = False  # relays of kept-alive connections end with the process
    allow_reuse_address = True

    def __init__(self, cert: Path, key: Path, target_port: int) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.target_port = target_port
        super().__init__(("127.0.0.1", 0), _Relay)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        super().__exit__(*exc)


class _Relay(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            client = self.server.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):  # the client refused our certificate: what the tests expect to see
            return
        with client, socket.create_connection(("127.0.0.1", self.server.target_port)) as upstream:
            selector = selectors.DefaultSelector()
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select(timeout=60):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
