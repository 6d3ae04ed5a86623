"""``pilletgan pacs --url URL --out DIR [--study UID ...] [--since YYYYMMDD] [--modality CR,DX] [--push] [--resume]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .arguments import add_model_arguments, add_progress_argument, load_predictor, positive_number, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pacs", help="pull chest radiographs from a DICOMweb PACS, localize pneumonia, push the DICOM SEGs back",
        description="Query the PACS (QIDO-RS), retrieve the selected radiographs (WADO-RS), write the outputs of "
                    "pilletgan batch into OUT_DIR and, with --push, store each SEG in the PACS (STOW-RS) unless it "
                    "is there already. Credentials: PILLETGAN_PACS_USER and PILLETGAN_PACS_PASSWORD (or "
                    "PILLETGAN_PACS_TOKEN), or a netrc file (--netrc, default ~/.netrc); never on the command line. "
                    "Exit code 0: every radiograph succeeded; 1: some failed (see errors.csv); 2: the run could not "
                    "start (PACS unreachable, credentials refused, bad options). See docs/pacs.md.")
    parser.add_argument("--url", required=True, metavar="URL",
                        help="DICOMweb service root, e.g. https://pacs.example.org/dicom-web")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT_DIR",
                        help="output folder; must be empty unless --resume")
    parser.add_argument("--study", action="append", default=[], metavar="UID",
                        help="Study Instance UID to pull (repeatable; default: every study with the modalities)")
    parser.add_argument("--since", metavar="YYYYMMDD", help="only studies dated on or after this day")
    parser.add_argument("--modality", default="CR,DX", metavar="LIST",
                        help="series modalities to pull, comma-separated (default CR,DX)")
    parser.add_argument("--push", action="store_true", help="store each SEG in the PACS (STOW-RS)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a run in OUT_DIR: keep complete results, reuse retrieved images; images that "
                             "could not be analysed before are reported again without being retrieved")
    parser.add_argument("--retry-failed", action="store_true",
                        help="with --resume: retrieve and analyse the images that failed in earlier runs again")
    add_model_arguments(parser)
    parser.add_argument("--select", metavar="RULES", default=None,
                        help="which retrieved images to analyse, as in pilletgan batch "
                             "(default: modality=the --modality list)")
    parser.add_argument("--heatmap-seg", action="store_true", help="also write (and push) the heat map SEG")
    parser.add_argument("--png", action="store_true", help="also write an overlay PNG per radiograph")
    parser.add_argument("--keep-images", action="store_true",
                        help="keep the retrieved images in OUT_DIR/retrieved (default: deleted once analysed)")
    parser.add_argument("--netrc", type=Path, metavar="PATH", help="netrc file with the PACS host's login")
    parser.add_argument("--ca-bundle", type=Path, metavar="PEM", help="CA certificates to verify the PACS's TLS")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (warns; tests only)")
    parser.add_argument("--timeout", type=positive_number, default=60.0, metavar="S",
                        help="seconds to wait for the PACS per request (default 60)")
    parser.add_argument("--retries", type=whole_number(0), default=4, metavar="N",
                        help="retries of a request that failed on the network or with HTTP 408/429/503/504, waiting "
                             "2, 4, 8, ... s (default 4)")
    parser.add_argument("--http-compression", action="store_true",
                        help="let the PACS gzip its answers (off: it costs the PACS CPU per image; for slow links)")
    parser.add_argument("--retrieve-threads", type=whole_number(1), default=2, metavar="N",
                        help="concurrent WADO-RS retrievals (default 2)")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def pacs_package():
    """:mod:`PilletGANLib.pacs`, or a :class:`ConfigurationError` saying how to install what it needs."""
    from ..errors import ConfigurationError

    try:
        from .. import pacs
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("dicomweb_client", "pynetdicom", "requests"):
            raise
        raise ConfigurationError(f"the PACS commands need the package {err.name}: install the PACS extra with "
                                 "pip install 'pilletgan[pacs]' (dicomweb-client, pynetdicom, requests)") from err
    return pacs


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch, MONAI or requests
    from ..batch import check_output_folder, describe
    from ..dicom import SelectionRules
    from ..errors import ConfigurationError

    pacs_lib = pacs_package()
    if not getattr(args, "verbose", False):
        logging.getLogger("highdicom").setLevel(logging.WARNING)
        logging.getLogger("dicomweb_client").setLevel(logging.WARNING)  # it logs every request at INFO
        # a malformed answer header (say, multipart without a boundary) is logged with a traceback; the request's
        # own error names it
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    if args.retry_failed and not args.resume:
        raise ConfigurationError("--retry-failed continues a run: give --resume with it")
    query = pacs_lib.PacsQuery(studies=tuple(args.study), since=args.since, modalities=tuple(args.modality.split(",")))
    rules = SelectionRules.parse(args.select) if args.select else SelectionRules(modalities=query.modalities)
    session, origin = pacs_lib.pacs_session(args.url, netrc_file=args.netrc, ca_bundle=args.ca_bundle, insecure=args.insecure)
    pacs = pacs_lib.DicomwebPacs(args.url, session, timeout=args.timeout, retries=args.retries,
                                   http_compression=args.http_compression)
    check_output_folder(args.out, resume=args.resume)  # early, before the slow model load
    predictor = load_predictor(args)
    summary = pacs_lib.run_pacs(pacs, args.out, predictor, query=query, rules=rules, push=args.push, resume=args.resume,
                       retry_failed=args.retry_failed, heatmap_seg=args.heatmap_seg, png=args.png, keep_images=args.keep_images,
                       retrieve_threads=args.retrieve_threads, progress=not args.no_progress, credentials=origin)
    print(describe(summary))
    section = summary.sections["pacs"]
    line = (f"PACS {section['url']}: {section['instances_listed']} instance(s) listed in {section['studies']} "
            f"study(ies), {section['retrieved']} retrieved, {section['reused_from_earlier_run']} reused")
    if "push" in section:
        pushed = section["push"]
        line += (f"; SEGs: {pushed.get('stored', 0)} stored, {pushed.get('already_in_pacs', 0)} already in the PACS, "
                 f"{pushed.get('failed', 0)} failed (push.csv)")
    print(line)
    return summary.exit_code
