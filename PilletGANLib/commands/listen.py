"""``pilletgan listen --port P --ae-title AE --out DIR [--forward AE@HOST:PORT]``."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from .arguments import add_model_arguments, load_predictor, positive_number
from .pacs import pacs_package


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "listen", help="run a DICOM node that localizes pneumonia on every radiograph it receives and forwards the SEG",
        description="Accept C-STORE of CR/DX radiographs, analyse each (outputs of pilletgan batch in OUT_DIR) and "
                    "C-STORE the SEG to the --forward node. Received images and SEGs wait in on-disk queues "
                    "(OUT_DIR/queue), so nothing is lost while the forward node is down or after a restart. "
                    "Runs until Ctrl-C or SIGTERM. See docs/pacs.md.")
    parser.add_argument("--port", type=int, default=11112, help="TCP port (default 11112)")
    parser.add_argument("--ae-title", default="PILLETGAN", metavar="AE", help="this node's AE title (default PILLETGAN)")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT_DIR",
                        help="results and queues (continued when it exists)")
    parser.add_argument("--forward", metavar="AE@HOST:PORT", help="node that receives the SEGs, e.g. PACS@10.0.0.5:104")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--allow", action="append", default=[], metavar="AE",
                        help="accept associations only from this calling AE title (repeatable; default: any)")
    add_model_arguments(parser)
    parser.add_argument("--select", metavar="RULES", default=None,
                        help="which images to analyse, as in pilletgan batch (default: modality=CR,DX)")
    parser.add_argument("--heatmap-seg", action="store_true", help="also write (and forward) the heat map SEG")
    parser.add_argument("--png", action="store_true", help="also write an overlay PNG per radiograph")
    parser.add_argument("--retry", type=positive_number, default=5.0, metavar="S",
                        help="seconds before retrying a failed forward, doubled up to --max-retry (default 5)")
    parser.add_argument("--max-retry", type=positive_number, default=300.0, metavar="S",
                        help="longest wait between forward retries (default 300)")
    parser.add_argument("--timeout", type=positive_number, default=30.0, metavar="S",
                        help="seconds to wait for the forward node (default 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch, MONAI or pynetdicom
    from pynetdicom import _config as pynetdicom_config

    from ..batch import describe
    from ..dicom import SelectionRules

    pacs = pacs_package()

    if not getattr(args, "verbose", False):
        logging.getLogger("highdicom").setLevel(logging.WARNING)
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # it logs every association at INFO
        # its standard handlers log every message's fields, and raise (a traceback in the log) on a malformed one
        pynetdicom_config.LOG_HANDLER_LEVEL = "none"
        # a peer that sends bytes which are no DICOM PDUs gets one ERROR line per byte and a traceback on reset
        logging.getLogger("pynetdicom.dul").setLevel(logging.CRITICAL)
    forward = pacs.DicomNode.parse(args.forward) if args.forward else None
    rules = SelectionRules.parse(args.select)
    predictor = load_predictor(args)
    listener = pacs.DicomListener(args.out, predictor, ae_title=args.ae_title, port=args.port, host=args.host,
                             forward=forward, allowed_callers=args.allow, rules=rules, heatmap_seg=args.heatmap_seg,
                             png=args.png, retry_interval=args.retry, max_retry_interval=args.max_retry,
                             timeout=args.timeout)
    signal.signal(signal.SIGTERM, lambda *_: listener.request_stop())
    listener.serve_forever()
    print(describe(listener.summary()))
    return 0
