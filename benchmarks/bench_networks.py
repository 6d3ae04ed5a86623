"""Micro-benchmark of the PILLET-GAN networks: images/s, parameters and GFLOPs, printed as JSON.

For each generator variant (``lta``, ``none``) and image size: forward images/s (eval mode, no
grad) and forward+backward images/s (training mode, backward of the output mean), the generator's
and the discriminator's parameter counts and forward GFLOPs per image (``FlopCounterMode``, one
multiply-add = 2 FLOPs). Runs on CUDA when available, else on the CPU.

    python benchmarks/bench_networks.py --sizes 64 256 --batch-size 1 --iterations 3
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from PilletGANLib.networks import PatchDiscriminator, PilletGenerator


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def images_per_second(step: Callable[[], None], batch_size: int, warmup: int, iterations: int,
                      device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch_size * iterations / (time.perf_counter() - start)


def forward_gflops(module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """Forward GFLOPs of one image (inputs of batch size 1)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() / 1e9


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def bench_generator(attention: str, size: int, args: argparse.Namespace, device: torch.device) -> dict:
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    generator = PilletGenerator(attention=attention).to(device, memory_format=memory_format)
    x = (torch.rand(args.batch_size, 1, size, size, device=device) * 2 - 1).contiguous(memory_format=memory_format)
    target = torch.arange(args.batch_size, device=device) % 2
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()

    def forward() -> None:
        with torch.no_grad(), autocast:
            generator(x, target)

    def forward_backward() -> None:
        with autocast:
            translated, _ = generator(x, target)
        translated.float().mean().backward()
        generator.zero_grad(set_to_none=True)

    generator.eval()
    forward_rate = images_per_second(forward, args.batch_size, args.warmup, args.iterations, device)
    generator.train()
    train_rate = images_per_second(forward_backward, args.batch_size, args.warmup, args.iterations, device)
    return {
        "attention": attention,
        "image_size": size,
        "forward_images_per_s": round(forward_rate, 3),
        "forward_backward_images_per_s": round(train_rate, 3),
        "generator_parameters": parameter_count(generator),
        "generator_gflops_per_image": round(forward_gflops(generator.eval(), x[:1], target[:1]), 3),
    }


def bench_discriminator(size: int, device: torch.device) -> dict:
    discriminator = PatchDiscriminator(image_size=size).to(device)
    x = torch.rand(1, 1, size, size, device=device) * 2 - 1
    return {"discriminator_parameters": parameter_count(discriminator),
            "discriminator_gflops_per_image": round(forward_gflops(discriminator, x), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--variants", nargs="+", choices=["lta", "none"], default=["lta", "none"])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    parser.add_argument("--bf16", action="store_true", help="run under torch.autocast with bfloat16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.manual_seed(0)

    results = []
    for size in args.sizes:
        discriminator = bench_discriminator(size, device)
        for attention in args.variants:
            results.append({**bench_generator(attention, size, args, device), **discriminator})
    print(json.dumps({
        "benchmark": "networks",
        "device": device_name(device),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "iterations": args.iterations,
        "bf16": args.bf16,
        "channels_last": args.channels_last,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
