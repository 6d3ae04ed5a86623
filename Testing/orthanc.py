"""A real Orthanc PACS for tests: started on free loopback ports with a generated configuration, never the service.

Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``.ci/run`` installs them). :func:`orthanc_binary`
skips the calling test with a message when Orthanc is not installed. Each :class:`Orthanc` keeps its
database in its own folder, so a stopped server can be started again with the same content; the
process is stopped at teardown. Its REST API (with the test user) is used to upload and inspect.

Debian's Orthanc 1.10 crashes on the first TLS handshake (``SslEnabled``), so HTTPS tests put
:class:`TlsProxy` (Python's ``ssl``, a self-signed certificate) in front of its plain HTTP port.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

USER, PASSWORD = "pillet", "orthanc-test-secret"
#: Where Debian puts the DICOMweb plugin (the first that exists is used).
PLUGIN_PATHS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7")


def orthanc_binary() -> str:
    """The Orthanc executable, or skip the test saying how to get it."""
    binary = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc",) if os.path.exists(p)), None)
    if binary is None:
        pytest.skip("Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb; .ci/run installs them)")
    return binary


def dicomweb_plugin() -> str:
    plugin = next((p for p in PLUGIN_PATHS if os.path.exists(p)), None)
    if plugin is None:
        pytest.skip("the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)")
    return plugin


def write_radiographs(dicom_dir: Path, folder: Path) -> dict[str, Path]:
    """The six real radiographs (five transfer syntaxes) under new UIDs in three studies, RG1 in two series;
    returns SOP Instance UID -> file."""
    from dicom_factory import REAL_FILES, write_copy

    studies = [generate_uid() for _ in range(3)]
    series = [generate_uid() for _ in range(4)]
    placement = {"RG1_UNCR.dcm": (0, 0), "RG1_J2KR.dcm": (0, 0), "RG1_J2KI.dcm": (0, 1),
                 "SIIM_CR_JPEG_BASELINE.dcm": (1, 2), "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm": (1, 2),
                 "NIH_DX_UNCOMPRESSED.dcm": (2, 3)}
    written = {}
    for name in REAL_FILES:
        study, serie = placement[name]
        ds = write_copy(dicom_dir, name, folder / name, studies[study], series[serie])
        written[str(ds.SOPInstanceUID)] = folder / name
    return written


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class Orthanc:
    """One Orthanc process; ``settings`` are merged over the test defaults."""

    folder: Path
    ae_title: str = "ORTHANC"
    settings: dict[str, Any] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    scheme: str = "http"
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def node(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def configuration(self) -> dict[str, Any]:
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        return {
            "Name": "PilletGAN test PACS",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [dicomweb_plugin()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 8,
            "SaveJobs": False,
            "StorageCompression": False,
            "HttpCompressionEnabled": False,
            **self.settings,
        }

    def start(self, timeout: float = 60.0) -> Orthanc:
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.configuration(), indent=2), encoding="utf-8")
        log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115 - the process writes it until stopped
        self.process = subprocess.Popen([orthanc_binary(), str(config)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.folder)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: "
                                   f"{(self.folder / 'orthanc.log').read_text(errors='replace')[-2000:]}")
            try:
                if self.rest("get", "/system").ok:
                    wait_for_port(self.dicom_port, timeout=10)
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"Orthanc did not answer within {timeout} s")

    def stop(self, graceful: bool = True) -> None:
        """Stop the process: SIGTERM and wait (a few seconds), or SIGKILL (the database survives either)."""
        if self.process is not None and self.process.poll() is None:
            (self.process.terminate if graceful else self.process.kill)()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # -- REST ------------------------------------------------------------------------------------
    def rest(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("verify", False)
        return requests.request(method, self.url + path, auth=(USER, PASSWORD), **kwargs)

    def upload(self, path: Path) -> str:
        """Store a DICOM file; returns Orthanc's instance id."""
        answer = self.rest("post", "/instances", data=path.read_bytes())
        answer.raise_for_status()
        return answer.json()["ID"]

    def instances(self, modality: str | None = None) -> list[dict[str, Any]]:
        """Every instance (with its main tags), optionally of one series modality."""
        found = []
        for series_id in self.rest("get", "/series").json():
            series = self.rest("get", f"/series/{series_id}").json()
            if modality and series["MainDicomTags"].get("Modality") != modality:
                continue
            found.extend(self.rest("get", f"/series/{series_id}/instances").json())
        return found

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
