"""Benchmark the bing source against bing-image-downloader, on a fake Bing server with 100 ms latency.

    python benchmarks/bench_scrape.py [--per-category 20] [--categories 10] [--latency 0.1]

Baseline: `bing_image_downloader.downloader.download` once per category, in sequence (it hard-codes
www.bing.com; `redirect_library` points it at the fake and refuses any non-loopback URL).
Ours: `scrape_bing` for all categories on a thread pool of `concurrent_categories` workers, as the
scrape flow runs it. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bing_image_downloader import downloader  # noqa: E402

from pipeline.dataset.sources.bing import BingParams, scrape_bing  # noqa: E402
from pipeline.dataset.sources.params import DEFAULT_CATEGORIES
from pipeline.testing.fakebing import FakeBing, redirect_library  # noqa: E402

TARGET_SPEEDUP = 5.0


def timed(run: Callable[[], int]) -> tuple[int, float]:
    """(images, seconds) of one run."""
    started = time.perf_counter()
    images = run()
    return images, time.perf_counter() - started


def baseline(fake: FakeBing, categories: list[str], per_category: int, cfg: BingParams, out: Path) -> int:
    """The library, one category after another; returns the number of images it saved."""
    with redirect_library(fake.endpoint), contextlib.redirect_stdout(io.StringIO()):
        for category in categories:
            downloader.download(category, limit=per_category, output_dir=str(out), adult_filter_off=not cfg.adult_filter,
                                timeout=cfg.timeout, filter=cfg.filter, verbose=False)
    return sum(1 for path in out.rglob("*") if path.is_file())


def ours(fake: FakeBing, categories: list[str], per_category: int, cfg: BingParams, out: Path) -> int:
    """scrape_bing for every category on a thread pool; checks the bytes; returns the number of images saved."""
    with ThreadPoolExecutor(max_workers=cfg.concurrent_categories) as pool:
        results = list(pool.map(lambda category: scrape_bing(category, out, per_category, cfg), categories))
    rows = [row for result in results for row in result.files]
    for row in rows:
        assert hashlib.sha256((out / row.file).read_bytes()).hexdigest() == row.sha256, row
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=20, help="images per category (default: %(default)s)")
    parser.add_argument("--categories", type=int, default=10, help="number of categories (default: %(default)s)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the fake waits per request (default: %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    categories = [f"{DEFAULT_CATEGORIES[i % len(DEFAULT_CATEGORIES)]} {i}" for i in range(args.categories)]
    expected = args.per_category * len(categories)
    with FakeBing(images_per_query=args.per_category, latency=args.latency) as fake, tempfile.TemporaryDirectory() as tmp:
        cfg = BingParams(endpoint=fake.endpoint)
        print(f"fake Bing at {fake.endpoint}: {len(categories)} categories x {args.per_category} images, "
              f"{args.latency * 1000:.0f} ms per request")
        results = {}
        for name, run in (("bing-image-downloader (sequential)", baseline), ("scrape_bing (concurrent)", ours)):
            fake.requests.clear()
            images, seconds = timed(lambda run=run: run(fake, categories, args.per_category, cfg, Path(tmp) / name))
            results[name] = (images, seconds, len(fake.requests))
            print(f"{name}: {images} images in {seconds:.2f} s = {images / seconds:.1f} images/s")
            assert images == expected, f"{name} saved {images} images, expected {expected}"

    (base_images, base_s, _), (our_images, our_s, _) = results.values()
    ratio = (our_images / our_s) / (base_images / base_s)
    print(f"\nspeed-up: {ratio:.1f}x (target >= {TARGET_SPEEDUP:.0f}x)"
          f" with concurrent_categories={cfg.concurrent_categories}, downloads_per_category={cfg.downloads_per_category}\n")
    print(f"| {'run':<36} | {'images':>6} | {'requests':>8} | {'seconds':>7} | {'images/s':>8} |")
    print(f"|{'-' * 38}|{'-' * 7}:|{'-' * 9}:|{'-' * 8}:|{'-' * 9}:|")
    for name, (images, seconds, requests) in results.items():
        print(f"| {name:<36} | {images:>6} | {requests:>8} | {seconds:>7.2f} | {images / seconds:>8.1f} |")
    if ratio < TARGET_SPEEDUP:
        sys.exit(f"speed-up {ratio:.1f}x is below the target {TARGET_SPEEDUP:.0f}x")


if __name__ == "__main__":
    main()
