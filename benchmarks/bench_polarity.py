"""The polarity check (:mod:`PilletGANLib.dicom.polarity`) measured on real radiographs and their negatives, as JSON.

For every image set of ``../shared/data`` that holds chest radiographs with air dark (SIIM-FISABIO-RSNA fold 3,
kept aside from the fit; NIH ChestX-ray14 64 px; RSNA; TBX11K; NIH full resolution; the six DICOM files read
as their headers say, except the one whose header lies) it prints how many images the check would flag
(false alarms) and how many of their negatives it would miss, at the shipped threshold ``WARN_BELOW`` and at 0.
The DICOM file whose header says MONOCHROME1 over MONOCHROME2 pixels must be flagged.

    python benchmarks/bench_polarity.py            # evaluate the shipped template
    python benchmarks/bench_polarity.py --fit      # refit on SIIM folds 0-2, print the template, then evaluate it
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LYING_HEADER = "SIIM_CR_JPEG_BASELINE_HEADER_MONO1.dcm"


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def siim_folds(folds: set[str]) -> list[Path]:
    root = DATA / "siim_covid_256"
    with open(root / "labels" / "image_labels.csv", newline="") as handle:
        return [root / "images" / f"{row['image_id']}.jpg" for row in csv.DictReader(handle) if row["fold"] in folds]


def image_sets() -> dict[str, list[np.ndarray]]:
    from PilletGANLib import load_cxr

    sets = {"siim_fold3": [_grey(p) for p in siim_folds({"3"})],
            "nih_64px": [_grey(p) for p in sorted((DATA / "nih1000_64px").glob("*/*/*.png"))],
            "rsna": [_grey(p) for p in sorted((DATA / "rsna" / "images").glob("*.png"))],
            "tbx11k": [_grey(p) for p in sorted((DATA / "tbx11k_sample" / "imgs").glob("*/*.png"))],
            "nih_fullres": [_grey(p) for p in sorted((DATA / "nih_fullres").glob("*.png"))],
            "dicom_as_read": [load_cxr(p)[0] for p in sorted((DATA / "dicom").glob("*.dcm")) if p.name != LYING_HEADER]}
    return {name: images for name, images in sets.items() if images}


def evaluate(template: np.ndarray | None = None, bias: float | None = None) -> dict[str, object]:
    from PilletGANLib import load_cxr
    from PilletGANLib.dicom.polarity import WARN_BELOW, polarity_logit

    report: dict[str, object] = {"warn_below": WARN_BELOW}
    for name, images in image_sets().items():
        logits = np.array([polarity_logit(image, template, bias) for image in images])
        negatives = np.array([polarity_logit(image.max() + image.min() - image, template, bias) for image in images])
        report[name] = {"images": len(images), "false_alarms": int((logits < WARN_BELOW).sum()),
                        "negatives_missed": int((negatives >= WARN_BELOW).sum()),
                        "false_alarms_at_0": int((logits < 0).sum()), "negatives_missed_at_0": int((negatives >= 0).sum()),
                        "min_logit": round(float(logits.min()), 2), "median_logit": round(float(np.median(logits)), 2)}
    lying = DATA / "dicom" / LYING_HEADER
    if lying.is_file():
        logit = polarity_logit(load_cxr(lying)[0], template, bias)
        report["lying_header_file"] = {"logit": round(logit, 2), "flagged": logit < WARN_BELOW}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="refit the template on SIIM folds 0-2 first")
    args = parser.parse_args()
    template = bias = None
    output: dict[str, object] = {}
    if args.fit:
        from PilletGANLib.dicom.polarity import fit_polarity_template

        clock = time.perf_counter()
        template, bias = fit_polarity_template(_grey(p) for p in siim_folds({"0", "1", "2"}))
        output["fit"] = {"seconds": round(time.perf_counter() - clock, 1), "bias": round(bias, 4),
                         "template": [[round(float(v), 2) for v in row] for row in template]}
    output["evaluation"] = evaluate(template, bias)
    print(json.dumps(output, indent=1))


if __name__ == "__main__":
    main()
