"""Training throughput of PILLET-GAN (``lta``) and the Fixed-Point GAN baseline (``none``), as JSON.

Runs ``PilletGANTrainer`` iterations (critic every iteration, generator every ``n_critic``) on random
images held in memory, so the figure is the training step alone, not data loading. Reports images/s
(critic iterations x batch / s after warm-up) and peak memory (CUDA allocator peak on GPU, process
peak RSS on CPU) for each variant on the current device.

    python benchmarks/bench_train.py --size 64 --batch-size 8 --iterations 10
    python benchmarks/bench_train.py --size 256 --batch-size 16 --amp        # on a GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from bench_networks import device_name

from PilletGANLib.engine.config import TrainingConfig
from PilletGANLib.engine.trainer import PilletGANTrainer, make_ema
from PilletGANLib.losses import PilletGANLoss
from PilletGANLib.networks import PatchDiscriminator, PilletGenerator


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(attention: str, args: argparse.Namespace, device: torch.device) -> dict:
    config = TrainingConfig(image_size=args.size, batch_size=args.batch_size, attention=attention,
                            base_channels=args.base_channels, num_res_blocks=args.num_res_blocks,
                            disc_base_channels=args.disc_base_channels, disc_layers=args.disc_layers,
                            amp=args.amp, channels_last=args.channels_last, iterations=args.warmup + args.iterations)
    torch.manual_seed(0)
    generator = PilletGenerator(**config.network_kwargs()).to(device)
    discriminator = PatchDiscriminator(**config.discriminator_kwargs()).to(device)
    g_opt = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), 1e-4, betas=(0.5, 0.999))
    images = torch.rand(args.batch_size, 1, args.size, args.size) * 2 - 1
    labels = torch.arange(args.batch_size) % 2
    batches = [{"image": images, "label": labels}] * (args.warmup + args.iterations)
    trainer = PilletGANTrainer(device=device, max_epochs=1, train_data_loader=batches, generator=generator,
                               discriminator=discriminator, g_optimizer=g_opt, d_optimizer=d_opt,
                               loss=PilletGANLoss(), max_iterations=config.iterations, n_critic=args.n_critic,
                               ema_generator=make_ema(generator), bf16=args.amp, channels_last=args.channels_last,
                               augment=True)
    times: list[float] = []

    def tick(engine) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter())

    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_COMPLETED, tick)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.run()
    timed = times[args.warmup - 1:] if args.warmup > 0 else times
    seconds = timed[-1] - timed[0]
    steps = len(timed) - 1
    return {
        "attention": attention,
        "images_per_s": round(steps * args.batch_size / seconds, 3) if seconds > 0 else None,
        "seconds_per_iteration": round(seconds / max(steps, 1), 4),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "generator_parameters": sum(p.numel() for p in generator.parameters()),
        "discriminator_parameters": sum(p.numel() for p in discriminator.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--base-channels", type=int, default=64)
    parser.add_argument("--num-res-blocks", type=int, default=6)
    parser.add_argument("--disc-base-channels", type=int, default=64)
    parser.add_argument("--disc-layers", type=int, default=6)
    parser.add_argument("--n-critic", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10, help="timed critic iterations")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = [run_variant(attention, args, device) for attention in ("lta", "none")]
    print(json.dumps({"benchmark": "train", "device": device_name(device), "torch": torch.__version__,
                      "size": args.size, "batch_size": args.batch_size, "n_critic": args.n_critic,
                      "base_channels": args.base_channels, "num_res_blocks": args.num_res_blocks,
                      "disc_base_channels": args.disc_base_channels, "disc_layers": args.disc_layers, "amp": args.amp,
                      "channels_last": args.channels_last, "results": results}, indent=2))


if __name__ == "__main__":
    main()
