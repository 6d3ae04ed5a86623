"""The Predictor's network step against the Fixed-Point GAN reference at equal architecture, as JSON.

Times, on the same batch and in one run, ``Predictor.translate`` (the network step of inference: the
healthy translation and its attention maps) for each backend (``torch``: eager; ``onnxruntime``; ``inductor``:
``torch.compile`` with frozen weights, its compilation left out of the timing and reported) of a generator of the
reference's architecture (64 base channels, 6 residual blocks, no attention), in float32 and, where the CPU
computes bfloat16 natively (AVX512-BF16 or AMX), in bf16; and the reference generator (``reference_fpgan.py``) run
eagerly in float32 under ``torch.no_grad``. Reports images/s, the ratio to the reference and each row's largest
difference from the eager float32 output (images in [-1, 1]).

    python benchmarks/bench_inference.py --size 256 --batch-size 1 --iterations 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_networks import device_name, images_per_second
from reference_fpgan import ReferenceGenerator

from PilletGANLib.inference import Predictor
from PilletGANLib.inference.backends import native_bf16
from PilletGANLib.networks import PilletGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch (and ONNX Runtime) CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    torch.manual_seed(0)
    images = torch.rand(args.batch_size, 1, args.size, args.size) * 2 - 1
    card = {"preprocessing": {"image_size": args.size}, "network": {"attention": "none"}}
    generator = PilletGenerator(attention="none")
    rows = [("torch", "torch", False), ("onnxruntime", "onnxruntime", False), ("inductor", "inductor", False)]
    if native_bf16(device):
        rows += [("torch_bf16", "torch", True), ("inductor_bf16", "inductor", True)]
    predictors = {name: Predictor(generator, card, device="cpu", backend=backend, bf16=bf16,
                                  batch_size=args.batch_size) for name, backend, bf16 in rows}
    reference = ReferenceGenerator().eval()
    code = torch.tensor([[1.0, 0.0]]).expand(args.batch_size, -1)

    def run_reference() -> None:
        with torch.no_grad():
            reference(images, code)

    eager = predictors["torch"].translate(images)[0]
    reference_rates = [images_per_second(run_reference, args.batch_size, args.warmup, args.iterations, device)]
    rates = {}
    differences, first_call = {}, {}
    for name, predictor in predictors.items():
        clock = time.perf_counter()
        differences[name] = float((predictor.translate(images)[0] - eager).abs().max())
        first_call[name] = time.perf_counter() - clock  # the export or compilation, for those that have one
        rates[name] = images_per_second(lambda p=predictor: p.translate(images), args.batch_size, args.warmup,
                                        args.iterations, device)
    reference_rates.append(images_per_second(run_reference, args.batch_size, args.warmup, args.iterations, device))
    rates = {"reference": sum(reference_rates) / 2, **rates}  # timed before and after the rows, to see drift
    print(json.dumps({
        "benchmark": "inference_network_step", "device": device_name(device), "torch": torch.__version__,
        "native_bf16": native_bf16(device), "size": args.size, "batch_size": args.batch_size,
        "iterations": args.iterations, "reference_before_after": [round(rate, 3) for rate in reference_rates],
        "results": [{"name": name, "images_per_s": round(rate, 3), "ratio": round(rate / rates["reference"], 3),
                     **({"max_abs_difference_from_float32": differences[name],
                         "first_call_s": round(first_call[name], 2)} if name in differences else {})}
                    for name, rate in rates.items()]}, indent=2))


if __name__ == "__main__":
    main()
