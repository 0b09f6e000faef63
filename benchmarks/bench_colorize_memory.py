"""Peak resident memory of the `colorize` command on one large photo, against the old whole-frame colorizer.

    python benchmarks/bench_colorize_memory.py [--sizes 1000x1000 4000x3000 6000x6000]

Each size is one synthetic color JPEG (quality 90), colorized with a tiny generator (image_size 200) on the CPU.
Every figure comes from a fresh process, read from its /proc/self/status: the floor is the resident memory after
imports, model load and decoding the photo (VmRSS); the two others are the peak (VmHWM) of a whole `colorize`
run, the PNG written included. "ours" is the command as it is; the baseline is the same command with the old
colorize_batch, which converted the whole frame to float32 tensors at once (reimplemented below). B/px is the
peak above the floor per pixel, and the ratio the baseline's B/px against ours, measured in the same run; s is the
whole command's wall time (model load, decode and PNG encoding included; noisy when other work shares the CPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageChops

from pipeline.core.images import to_rgb
from pipeline.model import colorize_cli
from pipeline.model.colorizer import Colorizer, load_colorizer, save_generator
from pipeline.model.lab import LabNormalization
from pipeline.model.networks import define_generator
from pipeline.model.params import GeneratorParams

MEBIBYTE = 1 << 20
MODEL_CONFIG = GeneratorParams(base_filters=8, depth=3)
IMAGE_SIZE = 200


def whole_frame_colorize_batch(self: Colorizer, images: list[Image.Image]) -> list[Image.Image]:
    """The baseline: colorize_batch as it was, with float32 tensors of the full-resolution frame."""
    if len({image.size for image in images}) > 1:
        return [self.colorize(image) for image in images]
    rgb = torch.stack([torch.from_numpy(np.asarray(to_rgb(image), dtype=np.float32) / 255).permute(2, 0, 1) for image in images])
    l_full, _ = self.normalization.split(rgb)
    height, width = l_full.shape[-2:]
    scale = self.image_size / min(height, width)
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    l_small = F.interpolate(l_full, size=small, mode="bilinear", antialias=True, align_corners=False)
    ab = F.interpolate(self.predict_ab(l_small).cpu(), size=(height, width), mode="bilinear", align_corners=False)
    out = np.clip(self.normalization.to_rgb(l_full, ab).permute(0, 2, 3, 1).numpy() * 255 + 0.5, 0, 255).astype(np.uint8)
    return [Image.fromarray(pixels, "RGB") for pixels in out]


def memory_status(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(method: str, photo: Path, model: Path, out: Path) -> dict[str, float]:
    """In this (fresh) process: the floor, or the peak of one `colorize` run with our or the baseline colorizer."""
    if method == "floor":
        load_colorizer(model, "cpu", "--device")
        image = colorize_cli.read_image(photo)
        return {"bytes": memory_status("VmRSS"), "pixels": image.width * image.height}
    if method == "baseline":
        Colorizer.colorize_batch = whole_frame_colorize_batch
    start = time.perf_counter()
    status = colorize_cli.main([str(photo), "-o", str(out), "--model", str(model), "--device", "cpu"])
    if status != colorize_cli.EXIT_OK:
        raise SystemExit(f"colorize exited with {status}")
    return {"bytes": memory_status("VmHWM"), "seconds": time.perf_counter() - start}


def in_fresh_process(method: str, photo: Path, model: Path, out: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", method, str(photo), str(model), str(out)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.splitlines()[-1])


def make_photo(path: Path, width: int, height: int) -> None:
    """A smooth random color field with fine grain, like a photo to a JPEG and PNG encoder."""
    coarse = np.random.default_rng(width * height).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width, height), 8).convert("RGB")
    ImageChops.add(smooth, grain, offset=-128).save(path, "JPEG", quality=90)


def make_model(path: Path) -> None:
    torch.manual_seed(0)
    save_generator(path, define_generator(MODEL_CONFIG).eval(), MODEL_CONFIG, LabNormalization(), IMAGE_SIZE, {})


def size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=size, default=[(1000, 1000), (4000, 3000), (6000, 6000)], metavar="WxH")
    parser.add_argument("--measure", nargs=4, metavar=("METHOD", "PHOTO", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        method, *paths = args.measure
        print(json.dumps(measure(method, *map(Path, paths))))
        return
    print(f"{'photo':>10} {'floor MB':>9} | {'ours MB':>8} {'B/px':>6} {'s':>5} | {'baseline MB':>11} {'B/px':>6} {'s':>5} | ratio")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_model(work / "generator.pt")
        for width, height in args.sizes:
            photo = work / f"{width}x{height}.jpg"
            make_photo(photo, width, height)
            floor = in_fresh_process("floor", photo, work / "generator.pt", work / "out-floor")
            ours = in_fresh_process("ours", photo, work / "generator.pt", work / "out-ours")
            baseline = in_fresh_process("baseline", photo, work / "generator.pt", work / "out-baseline")
            pixels = floor["pixels"]
            ours_extra, baseline_extra = (run["bytes"] - floor["bytes"] for run in (ours, baseline))
            print(
                f"{f'{width}x{height}':>10} {floor['bytes'] / MEBIBYTE:9.0f} | "
                f"{ours['bytes'] / MEBIBYTE:8.0f} {ours_extra / pixels:6.1f} {ours['seconds']:5.1f} | "
                f"{baseline['bytes'] / MEBIBYTE:11.0f} {baseline_extra / pixels:6.1f} {baseline['seconds']:5.1f} | "
                f"{baseline_extra / ours_extra:5.1f}x"
            )


if __name__ == "__main__":
    main()
