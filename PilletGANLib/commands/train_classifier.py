"""``pilletgan model train-classifier --manifest M.csv --out RUN_DIR [--config CFG] [--set key=value ...]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import add_progress_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-classifier", help="train the classifier baseline (MONAI DenseNet, read with Grad-CAM) from a manifest",
        description="Train the baseline a user would pick instead of PILLET-GAN: a MONAI DenseNet scoring opacity vs "
                    "none on the same manifest, images, labels and splits, whose Grad-CAM is its lesion map. Exports "
                    "RUN_DIR/model.pt + model.json (kind 'classifier'), which `pilletgan evaluate --model` scores "
                    "like a PilletGAN model. Settings: network (densenet121, densenet-small), image_size, "
                    "batch_size, learning_rate, epochs, max_minutes (wall-time budget), seed, cam_layer, ...")
    parser.add_argument("--manifest", required=True, help="manifest CSV (see `pilletgan data manifest`)")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run folder")
    parser.add_argument("--config", type=Path, help="JSON or YAML file of settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. network=densenet-small, max_minutes=25, seed=1 (repeatable)")
    add_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.classifier import ClassifierTrainingConfig, train_classifier
    from ..engine.config import load_config

    config = load_config(args.config, args.set, config_class=ClassifierTrainingConfig)
    summary = train_classifier(args.manifest, args.out, config, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0
