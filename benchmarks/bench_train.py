"""Training throughput (images/s of one D+G step) for the default and the full-scale networks.

    python benchmarks/bench_train.py [--device auto] [--steps 5] [--batch-size 16]

On CUDA it also measures each configuration with and without bf16 autocast + channels_last and
with torch.compile; on CPU only the plain configuration. Random data at the training resolution:
the default trains on 128² crops, the full-scale setup on whole 200² images. The ratio column is
against the first row, measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch

from pipeline.model.data import Batch
from pipeline.model.devices import resolve_device
from pipeline.model.params import TrainParams
from pipeline.model.trainer import Trainer

SETUPS = {
    "default (base 16, depth 5, 128² crops)": (TrainParams(), 128),
    "full scale (base 64, depth 6, 200²)": (
        TrainParams(crop=0, generator={"base_filters": 64, "depth": 6}, discriminator={"base_filters": 64}),
        200,
    ),
}


def images_per_second(cfg: TrainParams, side: int, device: torch.device, batch_size: int, steps: int) -> float:
    trainer = Trainer.create(cfg, device)
    forward_g = torch.compile(trainer.generator) if cfg.compile else trainer.generator
    forward_d = torch.compile(trainer.discriminator) if cfg.compile and trainer.discriminator else trainer.discriminator
    batch = Batch(torch.rand(batch_size, 1, side, side, device=device) * 2 - 1, torch.rand(batch_size, 2, side, side, device=device) - 0.5)
    for _ in range(2):  # warm-up (and compilation)
        trainer.step(batch, forward_g, forward_d)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(batch, forward_g, forward_d)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    device = resolve_device(args.device, "--device")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    variants = {"fp32": {"mixed_precision": False}}
    if device.type == "cuda":
        variants |= {"bf16 + channels_last": {}, "bf16 + channels_last + compile": {"compile": True}}
    print(f"device: {name}; batch {args.batch_size}, {args.steps} timed steps")
    baseline = None
    for setup, (cfg, side) in SETUPS.items():
        for variant, changes in variants.items():
            rate = images_per_second(cfg.model_copy(update=changes), side, device, args.batch_size, args.steps)
            baseline = baseline or rate
            print(f"{setup:42} {variant:32} {rate:9.1f} images/s  {rate / baseline:6.2f}x")


if __name__ == "__main__":
    main()
