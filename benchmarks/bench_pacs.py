"""PACS throughput: the same radiographs analysed from a local folder (``run_batch``) and over DICOMweb from a local
Orthanc (``run_pacs``), printed as JSON.

Builds ``--n`` copies of the real radiographs in ../shared/data/dicom with new UIDs (as ``bench_batch.py`` does:
five transfer syntaxes, pixels untouched), stores them in a throwaway Orthanc on loopback ports
(:class:`~PilletGANLib.pacs.LocalOrthanc`: Debian ``orthanc`` + ``orthanc-dicomweb``), then times with the
same predictor, alternating the order over ``--repeats`` rounds and keeping each side's best:

- ``folder_instances_per_s``: ``run_batch`` over the folder (discovery, decoding, model, SEG, reports);
- ``dicomweb_instances_per_s``: ``run_pacs`` (QIDO-RS, WADO-RS retrieval ahead of the model, the same
  analysis and outputs), and ``ratio`` = dicomweb / folder (target >= 0.8 on loopback);
- ``dicomweb_push_instances_per_s``: ``run_pacs --push`` into a fresh output folder of a fresh PACS
  (adds the STOW-RS of each SEG);
- ``retrieve_only_instances_per_s``: WADO-RS retrieval of every instance to disk, no analysis.

    python benchmarks/bench_pacs.py --n 24 [--model PATH] [--device cpu] [--batch-size 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from pathlib import Path

import torch
from bench_batch import DICOM_DIR, build_export, choose_model
from bench_networks import device_name

from PilletGANLib.batch import run_batch
from PilletGANLib.inference import Predictor
from PilletGANLib.pacs import (
    PASSWORD_VARIABLE,
    USER_VARIABLE,
    DicomwebPacs,
    LocalOrthanc,
    PacsQuery,
    RemoteInstance,
    pacs_session,
    run_pacs,
)


def fresh_pacs(folder: Path, files: list[Path]) -> tuple[LocalOrthanc, DicomwebPacs]:
    password = secrets.token_urlsafe(12)
    orthanc = LocalOrthanc(folder, user="bench", password=password).start()
    for path in files:
        orthanc.upload(path)
    session, _ = pacs_session(orthanc.dicomweb_url, environ={USER_VARIABLE: "bench", PASSWORD_VARIABLE: password})
    return orthanc, DicomwebPacs(orthanc.dicomweb_url, session)


def timed(run) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="instances (default 24)")
    parser.add_argument("--model", type=Path, default=None, help="model .pt with its card (default: the shipped one)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (default 0)")
    parser.add_argument("--retrieve-threads", type=int, default=2, help="concurrent WADO-RS retrievals (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds, alternating the order (default 2)")
    args = parser.parse_args()
    if not DICOM_DIR.is_dir():
        raise SystemExit(f"real DICOM files not found at {DICOM_DIR} (../shared/data/dicom)")

    with tempfile.TemporaryDirectory(prefix="bench_pacs_") as scratch:
        scratch = Path(scratch)
        files = build_export(scratch / "export", args.n)
        model, model_source = choose_model(args.model, scratch)
        predictor = Predictor.from_path(model, device=args.device, batch_size=args.batch_size, num_workers=args.workers)
        orthanc, pacs = fresh_pacs(scratch / "orthanc", files)
        try:
            run_batch(scratch / "export", scratch / "warmup", predictor, progress=False)  # caches, allocator, threads
            folder_s, dicomweb_s = [], []
            for round_ in range(args.repeats):
                order = ("folder", "dicomweb") if round_ % 2 == 0 else ("dicomweb", "folder")
                for side in order:
                    out = scratch / f"{side}-{round_}"
                    if side == "folder":
                        seconds, summary = timed(lambda out=out: run_batch(scratch / "export", out, predictor,
                                                                           progress=False))
                        folder_s.append(seconds)
                    else:
                        seconds, summary = timed(lambda out=out: run_pacs(pacs, out, predictor, progress=False,
                                                                          retrieve_threads=args.retrieve_threads))
                        dicomweb_s.append(seconds)
                    assert summary.succeeded == args.n, f"{side}: {summary.counts()}"
            listed = list_instances(pacs)
            retrieve_s, _ = timed(lambda: [pacs.retrieve(r, scratch / "retrieved" / f"{k}.dcm")
                                           for k, r in enumerate(listed)])
        finally:
            orthanc.stop(graceful=False)
        orthanc, pacs = fresh_pacs(scratch / "orthanc-push", files)
        try:
            push_s, pushed = timed(lambda: run_pacs(pacs, scratch / "push", predictor, push=True, progress=False,
                                                    retrieve_threads=args.retrieve_threads))
            segs = len(orthanc.instances("SEG"))
        finally:
            orthanc.stop(graceful=False)

    folder_rate, dicomweb_rate = args.n / min(folder_s), args.n / min(dicomweb_s)
    print(json.dumps({
        "benchmark": "pacs",
        "device": device_name(predictor.device),
        "torch": torch.__version__,
        "n": args.n,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "retrieve_threads": args.retrieve_threads,
        "repeats": args.repeats,
        "image_size": predictor.image_size,
        "model_source": model_source,
        "model_sha256": predictor.card.get("sha256"),
        "folder_s": [round(s, 3) for s in folder_s],
        "dicomweb_s": [round(s, 3) for s in dicomweb_s],
        "folder_instances_per_s": round(folder_rate, 3),
        "dicomweb_instances_per_s": round(dicomweb_rate, 3),
        "ratio": round(dicomweb_rate / folder_rate, 3),
        "target_ratio": 0.8,
        "dicomweb_push_instances_per_s": round(args.n / push_s, 3),
        "segs_stored": segs,
        "push_failed": pushed.sections["pacs"].get("push", {}).get("failed", 0),
        "retrieve_only_instances_per_s": round(args.n / retrieve_s, 3),
    }, indent=2))


def list_instances(pacs: DicomwebPacs) -> list[RemoteInstance]:
    """Every CR/DX instance the PACS lists."""
    query = PacsQuery()
    return [i for study in pacs.find_studies(query) for i in pacs.find_instances(study, query.modalities)]


if __name__ == "__main__":
    main()
