"""How far full box supervision gets on the same images: a MONAI UNet trained on the opacity boxes, as JSON.

A reference point for the lesion-map metrics, not a product model. The UNet (2D, 16-256 channels, one
residual unit a level) learns the union of each training image's boxes (healthy images: an empty mask) from
the manifest's training split, read and preprocessed as the generator's inputs are (``load_cxr``,
``prepare_image``), with random rotation, scale, shift and gamma, binary cross-entropy plus Dice, bf16
autocast. Its sigmoid map, brought back to each image's source grid, is saved per validation
image (``maps/<stem>.npy``, the score in ``<stem>.json``: the mean of the map's top 1 %) and scored by
``pilletgan evaluate --maps`` (``eval/``); the sanity checks (the map of the grey-inverted input, the map
of the randomly re-initialized network; the same images as ``pilletgan evaluate --sanity``) are the
harness's own ``sanity_report``. Disease images without boxes are left out of training. Training runs on
the CPU unless ``--device`` names a GPU; maps and sanity checks run where it trained.

    python benchmarks/bench_box_supervised.py --manifest siim_boxed.csv --out box_supervised/s0 --seed 0 --minutes 14
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench_networks import device_name
from monai.losses import DiceLoss
from monai.networks.nets import UNet

from PilletGANLib.data.manifest import ManifestRecord, read_manifest, select_split
from PilletGANLib.evaluation import MapPrediction
from PilletGANLib.evaluation.sanity import sanity_report
from PilletGANLib.reading import load_cxr
from PilletGANLib.transforms.pipeline import PreparedImage, prepare_image

MARGIN = 1.0
SCORE_TOP_SHARE = 0.01
HEADLINE = ("detection_auc", "pointing_game", "dice_top15", "laterality_mass", "laterality_peak")


def box_unet() -> UNet:
    return UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=1)


def prepare(record: ManifestRecord, size: int) -> PreparedImage:
    return prepare_image(*load_cxr(record.image, size), size, MARGIN)


def box_mask(record: ManifestRecord, prepared: PreparedImage, size: int) -> torch.Tensor:
    """The union of the record's boxes on the network grid (``1 x size x size``)."""
    mask = torch.zeros(1, size, size)
    for x1, y1, x2, y2 in prepared.geometry.boxes_to_network(record.boxes):
        mask[0, max(math.floor(y1), 0):math.ceil(y2), max(math.floor(x1), 0):math.ceil(x2)] = 1.0
    return mask


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random rotation (+-10 degrees), scale (0.9-1.1) and shift (+-5 %) for image and mask; a gamma."""
    n = len(images)
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(20)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.1
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    masks = (F.grid_sample(masks, grid, align_corners=False) > 0.5).float()
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4).to(images.device)
    return ((images + MARGIN) / (2 * MARGIN)).clamp(0, 1) ** gamma * (2 * MARGIN) - MARGIN, masks


def train_unet(images: torch.Tensor, masks: torch.Tensor, args: argparse.Namespace, device: torch.device
               ) -> tuple[UNet, int]:
    """Train until ``--minutes`` or ``--iterations``, whichever comes first; returns the network and its iterations."""
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    net = box_unet().to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    dice = DiceLoss(sigmoid=True, batch=True)
    deadline = time.monotonic() + args.minutes * 60
    iteration = 0
    net.train()
    while time.monotonic() < deadline and (args.iterations is None or iteration < args.iterations):
        index = torch.randint(len(images), (args.batch_size,), generator=generator).to(device)
        batch, target = augment(images[index], masks[index], generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            logits = net(batch.contiguous(memory_format=torch.channels_last)).float()
        loss = F.binary_cross_entropy_with_logits(logits, target) + dice(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iteration += 1
        if iteration % 500 == 0:
            print(f"iteration {iteration}: loss {loss.item():.3f}", file=sys.stderr, flush=True)
    return net.eval(), iteration


class BoxUNetPredictor:
    """The trained UNet as a predictor of source-grid maps, in the shape the harness's sanity checks rerun
    (:class:`~PilletGANLib.evaluation.sanity.RerunnablePredictor`); score: the mean of the map's top 1 %."""

    margin = MARGIN
    batch_size = 1

    def __init__(self, network: torch.nn.Module, image_size: int) -> None:
        self._network, self.image_size = network, image_size

    @property
    def network(self) -> torch.nn.Module:
        return self._network

    def with_network(self, network: torch.nn.Module) -> BoxUNetPredictor:
        return BoxUNetPredictor(network.eval(), self.image_size)

    @torch.no_grad()
    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> list[MapPrediction]:
        device = next(self._network.parameters()).device
        results = []
        for item in prepared:
            probability = torch.sigmoid(self._network(item.network_input[None].to(device)))[0, 0].float().cpu()
            heatmap = item.geometry.map_to_source(probability.numpy()).astype(np.float32)
            top = np.sort(heatmap.ravel())[-max(1, int(heatmap.size * SCORE_TOP_SHARE)):]
            results.append(MapPrediction(image=item.image, heatmap=heatmap, score=float(top.mean())))
        return results


def write_maps(predictor: BoxUNetPredictor, records: Sequence[ManifestRecord], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        (result,) = predictor.predict_prepared([prepare(record, predictor.image_size)])
        np.save(folder / f"{record.key}.npy", result.heatmap)
        (folder / f"{record.key}.json").write_text(json.dumps({"score": result.score}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for maps/, eval/ and the weights")
    parser.add_argument("--split", default="val", help="split scored (default val); training reads 'train'")
    parser.add_argument("--size", type=int, default=128, help="network side in pixels (default 128)")
    parser.add_argument("--minutes", type=float, default=14.0, help="training time budget (default 14)")
    parser.add_argument("--iterations", type=int, default=None, help="stop after this many iterations as well")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="train in float32 (default: bf16 autocast)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sanity", type=int, default=50, help="images of the sanity checks (default 50)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    records = read_manifest(args.manifest, check_files=True, localization_only=True)
    train = [r for r in select_split(records, "train") if not r.is_disease or len(r.boxes)]
    scored = select_split(records, args.split)
    start = time.monotonic()
    prepared = [prepare(record, args.size) for record in train]
    images = torch.stack([p.network_input for p in prepared]).to(device)
    masks = torch.stack([box_mask(r, p, args.size) for r, p in zip(train, prepared, strict=True)]).to(device)
    del prepared
    read_s = time.monotonic() - start

    start = time.monotonic()
    net, iterations = train_unet(images, masks, args, device)
    train_s = time.monotonic() - start
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "box_unet.pt")
    predictor = BoxUNetPredictor(net, args.size)
    write_maps(predictor, scored, args.out / "maps")
    subprocess.run([sys.executable, "-m", "PilletGANLib.cli", "evaluate", "--manifest", str(args.manifest),
                    "--split", args.split, "--maps", str(args.out / "maps"), "--out", str(args.out / "eval"),
                    "--no-floors", "--no-progress", "--seed", str(args.seed)], check=True, stdout=sys.stderr)
    metrics = json.loads((args.out / "eval" / "metrics.json").read_text())
    laterality = metrics["laterality"]

    print(json.dumps({
        "benchmark": "box_supervised",
        "device": device_name(device),
        "torch": torch.__version__,
        "seed": args.seed,
        "size": args.size,
        "training_images": len(train),
        "boxed_training_images": int(masks.flatten(1).amax(1).sum()),
        "iterations": iterations,
        "epochs": round(iterations * args.batch_size / len(train), 2),
        "read_s": round(read_s, 1),
        "train_s": round(train_s, 1),
        "scored_images": len(scored),
        **{name: metrics[name] for name in HEADLINE},
        "intervals": metrics["intervals"],
        "laterality_mass_interval": laterality["laterality_mass_interval"],
        "unilateral_images": laterality["images"],
        "faint": {key: laterality.get("faint", {}).get(key) for key in ("images", "laterality_mass", "laterality_peak")},
        "sanity": {key: value for key, value in sanity_report(predictor, scored, args.sanity, seed=args.seed,
                                                              randomization_seed=args.seed, progress=False).items()
                   if key != "per_image"},
        "report": str(args.out / "eval" / "index.html"),
    }, indent=2))


if __name__ == "__main__":
    main()
