"""clean+resize flows on the Dask runner against the default runner, on bench_clean_resize.py's photos.

    python benchmarks/bench_dask.py [--images 240] [--workers 2] [--repeat 3]

Each runner runs the clean and resize flows as `dvc repro` does (Prefect task runs, one Prefect server
started before any timing): the default runner (a process pool of `workers`, started in each flow); the
Dask runner on a local cluster of `workers` single-threaded processes, started and warmed before the
timing; and the Dask runner starting a cluster of its own in each flow (`runner.kind: dask`, no address).
Each runs `--images` photos and 4 × as many (both make 8 × workers batches a stage, each a Prefect task
run, when --images >= 64 × workers), and the two times split into a fixed cost per clean+resize and a
rate per image. Figures are medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_clean_resize import make_photos  # noqa: E402

from flows import clean, resize  # noqa: E402
from pipeline.config import Params, parse_params  # noqa: E402


def clean_and_resize(folder: Path, params: Params) -> float:
    """Seconds for the clean and resize flows on folder/data/raw."""
    with contextlib.chdir(folder):
        start = time.perf_counter()
        clean.run(params)
        resize.run(params)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # Imported here: the default runner's spawned processes import this module, as they import a stage's flow module.
    from distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0")
    sizes = (args.images, 4 * args.images)
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=60), cluster:
        folders = [Path(tmp, str(size)) for size in sizes]
        for folder, size in zip(folders, sizes):
            make_photos(folder / "data/raw", size)
        print(f"JPEGs of 1600x1200 -> 200x200 PNG; {args.workers} workers; medians of {args.repeat} runs")
        runners = {
            "default (process pool)": {"kind": "local"},
            "Dask, cluster running": {"kind": "dask", "address": cluster.scheduler_address},
            "Dask, cluster per flow": {"kind": "dask"},
        }
        params = {name: parse_params({"workers": args.workers, "runner": runner}) for name, runner in runners.items()}
        for each in params.values():  # warm up the Prefect server, the page cache and the running cluster's workers
            clean_and_resize(folders[0], each)
        seconds = {
            name: [statistics.median(clean_and_resize(folder, each) for _ in range(args.repeat)) for folder in folders]
            for name, each in params.items()
        }
    baselines = [size / took for size, took in zip(sizes, seconds["default (process pool)"])]
    print(f"{'runner':24}" + "".join(f"{f'{size} images/s':>16}{'ratio':>7}" for size in sizes) + f"{'fixed s':>9}{'then images/s':>15}")
    for name, took in seconds.items():
        rate = (sizes[1] - sizes[0]) / (took[1] - took[0])
        rates = "".join(f"{size / s:16.1f}{size / s / base:6.2f}x" for size, s, base in zip(sizes, took, baselines))
        print(f"{name:24}{rates}{took[0] - sizes[0] / rate:9.1f}{rate:15.1f}")


if __name__ == "__main__":
    main()
