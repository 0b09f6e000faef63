"""clean+resize throughput on web-sized JPEGs, against a notebook's one-image-at-a-time loop.

    python benchmarks/bench_clean_resize.py [--images 240] [--workers 2]

Both sides read the same ≈1600×1200 JPEGs and write 200×200 PNGs. The notebook way opens, converts,
resizes and saves each image in turn; ours runs the clean stage (full decode check, color and
duplicate rules, content-hash names) and then the resize stage, in batches on a process pool as
the flows do. Prefect's fixed start-up per flow (a few seconds) is not included.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.parallel import process_pool
from pipeline.dataset.clean import clean_dataset
from pipeline.dataset.params import CleanParams, ResizeParams
from pipeline.dataset.resize import resize_dataset
from pipeline.dataset.scenes import KNOWN_SCENES, render_scene
from pipeline.dataset.scrape import write_raw_manifest
from pipeline.dataset.sources.base import Scraped, save_raw


def make_photos(root: Path, count: int) -> list[Path]:
    """`count` distinct 1600×1200 scene JPEGs (quality 90) with a raw manifest, as the scrape stage leaves them."""
    categories = sorted(KNOWN_SCENES)
    rows = []
    for index in range(count):
        category = categories[index % len(categories)]
        pixels = render_scene(category, np.random.default_rng(index), 1600, 1200)
        encoded = io.BytesIO()
        Image.fromarray(pixels).save(encoded, "JPEG", quality=90)
        rows.append(save_raw(root, category, f"{index:05d}.jpg", encoded.getvalue(), "bench", "bench://"))
    write_raw_manifest(root, [Scraped(rows)])
    return [root / row.file for row in rows]


def notebook_way(files: list[Path], out: Path) -> None:
    out.mkdir()
    for file in files:
        Image.open(file).convert("RGB").resize((200, 200)).save(out / f"{file.stem}.png")


def clean_and_resize(raw: Path, work: Path, workers: int) -> tuple[int, float]:
    """The clean and resize stages on a warm process pool: (images kept, seconds)."""
    with process_pool(workers) as pool:
        mapper = pool.map
        clean_dataset(raw, work / "warm-clean", CleanParams(), lambda fn, batches: mapper(fn, list(batches)[:workers]), workers)
        start = time.perf_counter()
        clean_dataset(raw, work / "clean", CleanParams(), mapper, workers)
        kept = resize_dataset(work / "clean", work / "resized", ResizeParams(size=200), mapper, workers).images
        return kept, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = make_photos(work / "raw", args.images)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} JPEGs, 1600x1200, {megabytes:.0f} MB")
        start = time.perf_counter()
        notebook_way(files, work / "notebook")
        notebook_seconds = time.perf_counter() - start
        kept, our_seconds = clean_and_resize(work / "raw", work, args.workers)
    notebook_rate, our_rate = len(files) / notebook_seconds, len(files) / our_seconds
    print(f"{'':28}{'seconds':>10}{'images/s':>10}")
    print(f"{'one image at a time':28}{notebook_seconds:10.2f}{notebook_rate:10.1f}")
    print(f"{f'clean+resize ({args.workers} workers)':28}{our_seconds:10.2f}{our_rate:10.1f}   ({kept} kept)")
    print(f"ratio: {our_rate / notebook_rate:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
