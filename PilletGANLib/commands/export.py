"""``pilletgan model export --out MODEL.onnx|MODEL.ts [--model M.pt] [--image-size N]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .arguments import add_model_path_argument, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write a model's healthy translator as ONNX or TorchScript",
        description="Export the network of a model (the shipped one unless --model) as one input image "
                    "(batch, 1, H, W) in [-1, 1], preprocessed as the card says, to one output (batch, 2, H, W): the "
                    "healed image and |healed - input|. Batch and image size stay dynamic (multiples of 4). The "
                    "localization recipe (gates, priors, calibration) is not part of the file: it is the card's.")
    add_model_path_argument(parser)
    parser.add_argument("--out", required=True, type=Path,
                        help="the exported file: .onnx (ONNX, opset 17) or .ts / .pt (TorchScript)")
    parser.add_argument("--image-size", type=whole_number(16), metavar="PIXELS",
                        help="side of the example image the graph is traced on (default: the card's image size)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigurationError, ModelError
    from ..model_store import load_model
    from ..networks import EXPORT_FORMATS, HealthyTranslator, export_onnx, export_torchscript

    export_format = EXPORT_FORMATS.get(args.out.suffix.lower())
    if export_format is None:
        raise ConfigurationError(f"--out must end in one of {sorted(EXPORT_FORMATS)}, got '{args.out.name}'")
    state, card, weights = load_model(args.model)
    translator = HealthyTranslator.from_card(card)
    try:
        translator.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"the weights do not fit the network the card describes ({err})", weights) from err
    size = args.image_size or int(card.get("preprocessing", {}).get("image_size", 256))
    if size < 16 or size % 4:
        raise ConfigurationError(f"--image-size must be a multiple of 4 and at least 16, got {size}")
    write = export_onnx if export_format == "onnx" else export_torchscript
    path = write(translator, args.out, image_size=size)
    print(json.dumps({"exported": str(path), "format": export_format, "model": str(weights),
                      "model_sha256": card["sha256"], "input": ["batch", 1, "height", "width"],
                      "output": ["batch", 2, "height", "width"], "channels": ["healed", "lesion_map"]}, indent=2))
    return 0
