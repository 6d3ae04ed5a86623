"""A throwaway Orthanc PACS on this machine, for the demo, the benchmark and the tests (not for production).

It runs Debian's ``Orthanc`` binary with the DICOMweb plugin (packages ``orthanc`` and
``orthanc-dicomweb``) from a generated configuration: database and storage in one folder, HTTP and
DICOM on loopback ports, remote access off, HTTP Basic authentication on. It never touches the
system's Orthanc service. Stopped, it can be started again on the same folder and ports with the
same content.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ..errors import ConfigurationError, PacsError

__all__ = ["DICOMWEB_PLUGINS", "LocalOrthanc", "free_port", "orthanc_binary", "wait_for_port"]

#: Where Debian puts the DICOMweb plugin; the first that exists is loaded.
DICOMWEB_PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7")


def orthanc_binary() -> str | None:
    """The ``Orthanc`` executable, or ``None`` when it is not installed."""
    return shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc",) if os.access(p, os.X_OK)), None)


def dicomweb_plugin() -> str | None:
    """The DICOMweb plugin library, or ``None`` when it is not installed."""
    return next((p for p in DICOMWEB_PLUGINS if os.path.exists(p)), None)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on ``127.0.0.1:port``; ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@dataclass
class LocalOrthanc:
    """One Orthanc process with its files in ``folder``; ``settings`` are merged over the defaults."""

    folder: Path
    user: str
    password: str
    ae_title: str = "ORTHANC"
    settings: dict[str, Any] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).resolve()  # Orthanc runs in it, so relative paths would point elsewhere

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def node(self) -> str:
        """``AE@HOST:PORT`` of its DICOM server."""
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def configuration(self) -> dict[str, Any]:
        plugin = dicomweb_plugin()
        if plugin is None:
            raise ConfigurationError("the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)")
        storage = self.folder / "storage"
        return {
            "Name": "PilletGAN local PACS",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password},
            "Plugins": [plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpThreadsCount": 8,
            "SaveJobs": False,
            "StorageCompression": False,
            **self.settings,
        }

    def start(self, timeout: float = 60.0) -> LocalOrthanc:
        """Start the process and wait until its REST API and DICOM port answer; returns ``self``."""
        binary = orthanc_binary()
        if binary is None:
            raise ConfigurationError("Orthanc is not installed (Debian packages orthanc and orthanc-dicomweb)")
        (self.folder / "storage").mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.configuration(), indent=2), encoding="utf-8")
        config.chmod(0o600)  # it holds the password
        with open(self.folder / "orthanc.log", "ab") as log:
            self.process = subprocess.Popen([binary, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.folder / "orthanc.log").read_text(errors="replace")[-2000:]
                raise PacsError(f"Orthanc exited with status {self.process.returncode}: {tail}", self.folder)
            try:
                if self.rest("get", "/system").ok:
                    wait_for_port(self.dicom_port, timeout=max(1.0, deadline - time.monotonic()))
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop(graceful=False)
        raise PacsError(f"Orthanc did not answer within {timeout:g} s (see orthanc.log)", self.folder)

    def stop(self, graceful: bool = True) -> None:
        """SIGTERM and wait (a few seconds), or SIGKILL; the database survives either."""
        if self.process is not None and self.process.poll() is None:
            (self.process.terminate if graceful else self.process.kill)()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalOrthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rest(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to its REST API as the configured user."""
        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.url + path, auth=(self.user, self.password), **kwargs)

    def upload(self, path: str | os.PathLike) -> str:
        """Store one DICOM file (REST ``POST /instances``); returns Orthanc's instance id."""
        answer = self.rest("post", "/instances", data=Path(path).read_bytes())
        answer.raise_for_status()
        return answer.json()["ID"]

    def instances(self, modality: str | None = None) -> list[dict[str, Any]]:
        """Every instance (Orthanc's description, with its main tags), optionally of one series modality."""
        found = []
        for series_id in self.rest("get", "/series").json():
            series = self.rest("get", f"/series/{series_id}").json()
            if modality is None or series["MainDicomTags"].get("Modality") == modality:
                found.extend(self.rest("get", f"/series/{series_id}/instances").json())
        return found
