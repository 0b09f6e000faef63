"""Training data at scale: how fast the streaming loader delivers pairs against how fast training consumes them, and
the training's peak memory as the split grows, from memory (`train.loader: memory`) and streamed (`stream`).

    python benchmarks/bench_loader.py [--images 2500 10000] [--side 64] [--workers 2] [--folder DIR]

It writes splits of smooth random color images (offline, no source needed) under --folder (a temp folder by default),
then, each in a fresh process so that its peak RSS is its own: the loader alone (one pass, no training), and one
epoch of training with the default networks from memory and streamed. Ratios are against the smallest split's run of
the same kind, measured in the same run: a flat peak RSS in `stream` is a ratio near 1 whatever the split's size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def write_split(root: Path, images: int, side: int) -> Path:
    """A split folder of `images` training pairs and 16 test pairs, each a smooth random color image."""
    from pipeline.dataset.manifests import MANIFEST, SplitFile, write_table

    if (root / MANIFEST).is_file():
        return root
    rows = []
    rng = np.random.default_rng(0)
    for split, count in (("train", images), ("test", 16)):
        (root / f"{split}_x").mkdir(parents=True, exist_ok=True)
        (root / f"{split}_y").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "RGB")
            image = coarse.resize((side, side), Image.Resampling.BICUBIC)
            name = f"c{i % 10}_{split}{i:07d}.png"
            image.save(root / f"{split}_y" / name)
            image.convert("L").save(root / f"{split}_x" / name)
            rows.append({"file": name, "category": f"c{i % 10}", "split": split, "resized_file": name})
    write_table(root / MANIFEST, SplitFile, rows)
    return root


def child(kind: str, split: Path, loader: str, workers: int) -> None:
    """One measurement in this process; prints a JSON line with the pairs per second and the peak RSS."""
    from pipeline.config import parse_params
    from pipeline.model.data import SplitPairs, training_pairs

    pairs = SplitPairs(split, "train")
    started = time.perf_counter()
    if kind == "loader":
        with training_pairs(pairs, loader, workers, torch.device("cpu")) as data:
            seen = sum(len(x) for x, _ in data.batches(torch.randperm(len(pairs)), 16, 0))
    else:
        from flows.train import run_training

        params = parse_params({"seed": 0, "workers": workers, "train": {"epochs": 1, "loader": loader, "samples": 0}})
        with tempfile.TemporaryDirectory() as out:
            run_training(params, split, Path(out) / "models", Path(out) / "live")
        seen = len(pairs)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest loader process's
    print(json.dumps({"pairs_per_second": seen / seconds, "seconds": seconds, "peak_rss_mib": rss, "worker_rss_mib": workers_rss}))


def measure(kind: str, split: Path, loader: str, workers: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", kind, str(split), loader, str(workers)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def hardware() -> str:
    """The CPU's model and core count (and the GPU, if any), for the figures' heading."""
    cpuinfo = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")), "") if cpuinfo.exists() else ""
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{model or platform.machine()}, {os.cpu_count()} cores{gpu}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[2500, 10000], help="training pairs per split")
    parser.add_argument("--side", type=int, default=64, help="image side in pixels")
    parser.add_argument("--workers", type=int, default=2, help="loader processes")
    parser.add_argument("--folder", type=Path, default=None, help="where the splits are written (kept for a rerun)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, split, loader, workers = args.child
        child(kind, Path(split), loader, int(workers))
        return
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-loader-"))
    print(f"{hardware()}; {args.side} px; {args.workers} loader processes; splits in {folder}")
    print(f"{'run':<18}{'pairs':>8}{'pairs/s':>10}{'seconds':>9}{'peak RSS MiB':>14}{'RSS ratio':>11}{'loader proc. MiB':>18}")
    first: dict[str, float] = {}
    for images in args.images:
        split = write_split(folder / f"split-{images}-{args.side}", images, args.side)
        for kind, loader in (("loader", "stream"), ("train", "memory"), ("train", "stream")):
            result = measure(kind, split, loader, args.workers)
            name = f"{kind} ({loader})"
            first.setdefault(name, result["peak_rss_mib"])
            ratio = result["peak_rss_mib"] / first[name]
            print(f"{name:<18}{images:>8}{result['pairs_per_second']:>10.0f}{result['seconds']:>9.1f}{result['peak_rss_mib']:>14.0f}{ratio:>11.2f}"
                  f"{result['worker_rss_mib']:>18.0f}", flush=True)


if __name__ == "__main__":
    main()
