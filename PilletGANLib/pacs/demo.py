"""The PACS demo in one command: a local Orthanc, pulled from and pushed to over DICOMweb, and fed over DICOM.

    python -m PilletGANLib.pacs.demo DIR [--model PATH] [--device cpu] [--no-wait]

1. starts a throwaway Orthanc (:class:`LocalOrthanc`, Debian ``orthanc`` + ``orthanc-dicomweb``) in ``DIR/orthanc``
   on loopback ports, with a generated password;
2. stores two synthetic radiographs (the demo phantom, with and without an opacity) in it;
3. ``pilletgan pacs --push``: QIDO-RS, WADO-RS, analysis, STOW-RS of the SEGs (``DIR/pacs``);
4. ``pilletgan listen`` forwarding to the Orthanc (``DIR/listen``), and a third phantom sent to it by C-STORE
   as a modality would: its SEG arrives in the Orthanc too;
5. prints the Orthanc Explorer address and login, and keeps the Orthanc running until Ctrl-C (``--no-wait``: stops).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import sys
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from ..batch import describe
from ..demo import make_phantom_radiograph, write_phantom_dicom
from ..errors import ConfigurationError, PilletGANError
from ..inference import Predictor
from .credentials import PASSWORD_VARIABLE, USER_VARIABLE, pacs_session
from .dicomweb import DicomwebPacs
from .dimse import DicomNode
from .listener import DicomListener
from .local_orthanc import LocalOrthanc
from .pull import run_pacs

__all__ = ["main", "run_pacs_demo"]

logger = logging.getLogger(__name__)

#: Phantom seeds: two stored in the PACS (with and without an opacity), one sent to the listener.
_PACS_PHANTOMS, _SENT_PHANTOM = ((11, True), (12, False)), (13, True)


def _send(listener: DicomListener, path: Path) -> int:
    """C-STORE ``path`` to the listener as a modality (AE ``DEMO_MODALITY``) would; returns the status."""
    ae = AE(ae_title="DEMO_MODALITY")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1", ExplicitVRLittleEndian)  # Computed Radiography Image Storage
    assoc = ae.associate("127.0.0.1", listener.port, ae_title=listener.ae_title)
    if not assoc.is_established:
        raise PilletGANError("the demo's listener refused the association", path)
    try:
        return int(assoc.send_c_store(path).get("Status", -1))
    finally:
        assoc.release()


def run_pacs_demo(folder: str | os.PathLike, predictor: Predictor, wait: bool = True, size: int = 1024) -> int:
    """Run the demo in ``folder`` (new or empty); returns the number of SEGs the Orthanc holds at the end."""
    folder = Path(folder).resolve()
    if folder.exists() and any(folder.iterdir()):
        raise ConfigurationError(f"the demo folder {folder} is not empty; give a new one")
    password = secrets.token_urlsafe(12)
    orthanc = LocalOrthanc(folder / "orthanc", user="demo", password=password).start()
    try:
        images = folder / "images"
        images.mkdir()
        for seed, opacity in _PACS_PHANTOMS:
            path = write_phantom_dicom(images / f"phantom_{seed}.dcm",
                                       make_phantom_radiograph((size, size), opacity=opacity, seed=seed))
            orthanc.upload(path)
        print(f"Orthanc is running: {orthanc.url}/app/explorer.html (user demo, password {password}); DICOMweb at "
              f"{orthanc.dicomweb_url}, DICOM at {orthanc.node}")

        print("\n== pilletgan pacs --push: pull from the PACS over DICOMweb, push the SEGs back")
        session, origin = pacs_session(orthanc.dicomweb_url, environ={USER_VARIABLE: "demo", PASSWORD_VARIABLE: password})
        summary = run_pacs(DicomwebPacs(orthanc.dicomweb_url, session), folder / "pacs", predictor, push=True,
                           progress=False, credentials=origin)
        print(describe(summary))

        print("\n== pilletgan listen --forward: a radiograph sent by C-STORE, its SEG forwarded to the PACS")
        seed, opacity = _SENT_PHANTOM
        sent = write_phantom_dicom(images / f"phantom_{seed}.dcm",
                                   make_phantom_radiograph((size, size), opacity=opacity, seed=seed))
        with DicomListener(folder / "listen", predictor, port=0, forward=DicomNode.parse(orthanc.node)) as listener:
            status = _send(listener, sent)
            listener.wait_idle(timeout=600)
            print(f"C-STORE status 0x{status:04X}; " + describe(listener.summary()).splitlines()[0])
        segs = len(orthanc.instances("SEG"))
        print(f"\nThe PACS now holds {segs} SEG(s), one per radiograph: {orthanc.url}/app/explorer.html "
              f"(user demo, password {password})")
        if wait:
            print("Press Ctrl-C to stop the Orthanc (its files stay in the demo folder).")
            with contextlib.suppress(KeyboardInterrupt):
                orthanc.process.wait()
        return segs
    finally:
        orthanc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m PilletGANLib.pacs.demo",
                                     description="Pull from, push to and forward to a local Orthanc PACS.")
    parser.add_argument("folder", type=Path, metavar="DIR", help="demo folder (new or empty)")
    parser.add_argument("--model", type=Path, help="model .pt with its .json card (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, ...")
    parser.add_argument("--size", type=int, default=1024, help="rows and columns of the phantoms (default 1024)")
    parser.add_argument("--no-wait", action="store_true", help="stop the Orthanc at the end instead of waiting")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("highdicom", "pynetdicom", "dicomweb_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        predictor = Predictor.from_path(args.model, device=args.device)
        segs = run_pacs_demo(args.folder, predictor, wait=not args.no_wait, size=args.size)
    except PilletGANError as err:
        print(f"pacs demo: error: {err}", file=sys.stderr)
        return 2
    return 0 if segs == len(_PACS_PHANTOMS) + 1 else 1


if __name__ == "__main__":
    sys.exit(main())
