"""``pilletgan data manifest rsna|nih|siim-covid|folders|synthetic SRC --out ...``: a training/evaluation manifest."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from .arguments import whole_number


def _split_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--val-fraction", type=float, default=0.15, help="fraction of patients in val (default 0.15)")
    parent.add_argument("--test-fraction", type=float, default=0.0, help="fraction of patients in test (default 0)")
    parent.add_argument("--seed", type=whole_number(0), default=0, help="seed of the patient split (default 0)")
    return parent


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "manifest", help="write a manifest CSV from a public dataset layout, class folders or semi-synthetic data",
        description="Write the manifest CSV (image, label, patient_id, split, boxes, mask) that training and evaluation "
                    "read. Splits are by patient, never by image.")
    layouts = parser.add_subparsers(dest="layout", metavar="LAYOUT", required=True)
    common = _split_options()

    rsna = layouts.add_parser("rsna", parents=[common], help="RSNA Pneumonia Detection Challenge folder",
                              description="SRC/stage_2_train_images/<patientId>.dcm + SRC/stage_2_train_labels.csv "
                                          "(+ stage_2_detailed_class_info.csv when present: 'Normal' = healthy, "
                                          "'Lung Opacity' = disease, 'No Lung Opacity / Not Normal' left out; without "
                                          "it, Target 0 = healthy).")
    rsna.add_argument("--labels", help="labels CSV (default SRC/stage_2_train_labels.csv)")
    rsna.add_argument("--class-info", help="detailed class CSV (default SRC/stage_2_detailed_class_info.csv if present)")
    rsna.add_argument("--images", help="image folder (default SRC/stage_2_train_images)")

    nih = layouts.add_parser("nih", parents=[common], help="NIH ChestX-ray14 folder",
                             description="PNGs anywhere under SRC + Data_Entry_2017*.csv(.gz) + optional "
                                         "BBox_List_2017.csv. 'No Finding' = healthy; the chosen findings = disease.")
    nih.add_argument("--finding", action="append", metavar="LABEL",
                     help="NIH finding counted as disease; repeat or comma-separate (default: Pneumonia)")
    nih.add_argument("--data-entry", help="Data_Entry table (default: newest SRC/Data_Entry_2017*.csv[.gz])")
    nih.add_argument("--bbox-list", help="bounding-box list (default SRC/BBox_List_2017.csv if present)")
    nih.add_argument("--images", help="folder searched for the PNGs (default SRC)")

    siim = layouts.add_parser("siim-covid", parents=[common], help="SIIM-FISABIO-RSNA COVID-19 folder or a resized copy",
                              description="Original (train_image_level.csv + train_study_level.csv + train/) or "
                                          "pre-resized (images/ + labels/image_labels.csv + labels/boxes_256.csv) layout, "
                                          "detected. Negative study without box = healthy; Typical study with boxes = "
                                          "disease; others left out (--keep-boxed keeps the boxed ones for "
                                          "localization only).")
    siim.add_argument("--split-by", choices=("patient", "fold"), default="patient",
                      help="seeded patient split, or the resized copy's patient-grouped folds (default patient)")
    siim.add_argument("--val-folds", type=int, nargs="+", default=[3], help="folds used as val with --split-by fold")
    siim.add_argument("--test-folds", type=int, nargs="*", default=[], help="folds used as test with --split-by fold")
    siim.add_argument("--keep-boxed", action="store_true",
                      help="also keep the boxed images of Indeterminate and Atypical studies, marked localization_only: "
                           "pilletgan evaluate scores their maps (localization, laterality) but not their detection; "
                           "training and calibration leave them out")
    siim.add_argument("--no-dicom-patient", action="store_true",
                      help="original layout: use the study id as patient instead of reading PatientID from each DICOM")

    folders = layouts.add_parser("folders", parents=[common], help="a tree of class folders",
                                 description="SRC/<anything>/<class folder>/<images>. Existing train/valid folders are "
                                             "ignored: images are split again by patient.")
    folders.add_argument("--class", dest="classes", action="append", metavar="LABEL=FOLDER",
                         help="folder name of a class, e.g. healthy=0_normal (repeatable; default: keyword rules)")
    folders.add_argument("--patient-regex",
                         help="regex whose first group in the file name is the patient id (default: the leading digits "
                              "before an underscore; the stem when it does not match)")
    folders.add_argument("--one-patient-per-image", action="store_true", help="do not parse patient ids from names")

    for sub in (rsna, nih, siim, folders):
        sub.add_argument("src", metavar="SRC", help="dataset folder")
        sub.add_argument("--out", required=True, help="manifest CSV to write")

    synthetic = layouts.add_parser(
        "synthetic", parents=[common], help="semi-synthetic dataset from a manifest of real normals",
        description="Split the healthy images' patients into two disjoint groups: one written as healthy, the other "
                    "with a synthetic opacity and its mask. Results on this data are semi-synthetic.")
    synthetic.add_argument("src", metavar="NORMALS.csv", help="manifest whose healthy images are used")
    synthetic.add_argument("--out", required=True, help="output folder")
    synthetic.add_argument("--size", type=int, help="pad to square and resize to N px (default: keep each image's size)")
    synthetic.add_argument("--fraction-disease", type=float, default=0.5,
                           help="fraction of patients given an opacity (default 0.5)")
    synthetic.add_argument("--area-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                           help="opacity area as a fraction of the lung area (default 0.03 0.20)")
    synthetic.add_argument("--density-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                           help="opacity peak density, 0..1 (default 0.3 0.8)")
    synthetic.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _class_folders(values: list[str] | None) -> dict[str, list[str]] | None:
    from ..data.manifest import LABELS
    from ..errors import ConfigurationError

    if not values:
        return None
    mapping: dict[str, list[str]] = {}
    for value in values:
        label, sep, folder = value.partition("=")
        if not sep or label.strip() not in LABELS or not folder.strip():
            raise ConfigurationError(f"--class expects LABEL=FOLDER with LABEL in {LABELS}, got '{value}'")
        mapping.setdefault(label.strip(), []).append(folder.strip())
    return mapping


def run(args: argparse.Namespace) -> int:
    # imported here so that building the parser (every pilletgan command) does not load torch and MONAI
    from ..data.manifest import read_manifest, write_manifest
    from ..data.sources import (
        DEFAULT_PATIENT_PATTERN,
        NIH_DEFAULT_FINDINGS,
        build_folder_manifest,
        build_nih_manifest,
        build_rsna_manifest,
        build_siim_covid_manifest,
        format_summary,
    )
    from ..data.synthetic import write_synthetic_dataset

    skipped: Counter[str] = Counter()
    split = {"val_fraction": args.val_fraction, "test_fraction": args.test_fraction, "seed": args.seed}
    if args.layout == "synthetic":
        options = {k: tuple(v) for k, v in (("area_range", args.area_range), ("density_range", args.density_range)) if v}
        records = write_synthetic_dataset(read_manifest(args.src), args.out, size=args.size,
                                          fraction_disease=args.fraction_disease, source=str(Path(args.src).resolve()),
                                          opacity_options=options, progress=not args.no_progress, skipped=skipped, **split)
        out = Path(args.out) / "manifest.csv"
        print(f"semi-synthetic dataset written to {args.out} (see its README.txt)")
    else:
        if args.layout == "rsna":
            records = build_rsna_manifest(args.src, labels_csv=args.labels, class_info_csv=args.class_info,
                                          images_dir=args.images, skipped=skipped, **split)
        elif args.layout == "nih":
            findings = [f.strip() for value in args.finding or [] for f in value.split(",") if f.strip()]
            records = build_nih_manifest(args.src, findings=findings or NIH_DEFAULT_FINDINGS,
                                         data_entry_csv=args.data_entry, bbox_csv=args.bbox_list, images_dir=args.images,
                                         skipped=skipped, **split)
        elif args.layout == "siim-covid":
            records = build_siim_covid_manifest(args.src, split_by=args.split_by, val_folds=args.val_folds,
                                                test_folds=args.test_folds, patient_from_dicom=not args.no_dicom_patient,
                                                keep_boxed=args.keep_boxed, skipped=skipped, **split)
        else:
            pattern = None if args.one_patient_per_image else args.patient_regex or DEFAULT_PATIENT_PATTERN
            records = build_folder_manifest(args.src, class_folders=_class_folders(args.classes),
                                            patient_pattern=pattern, skipped=skipped, **split)
        out = write_manifest(records, args.out)
    print(f"manifest: {out} ({len(records)} images)")
    print(format_summary(records, skipped))
    return 0
