"""How long a rebuild with nothing to do takes: `dvc status` alone, `dvc repro`, and the pipeline flow.

    python benchmarks/bench_dvc_noop.py [--repeat 3]

Run it in a workspace that is up to date (after `dvc repro`). Baseline: `dvc status`, the least
DVC can do to find out that nothing is stale. `dvc repro` adds the per-stage checks and locking;
`python -m flows.pipeline` adds the Prefect flow (one stage reproduced per process, through DVC's API) and a
`dvc push` that finds the remote up to date. Set PREFECT_API_URL to a running server to leave out
the temporary server that Prefect otherwise starts for the flow.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "dvc status": ["dvc", "status"],
    "dvc repro": ["dvc", "repro"],
    "python -m flows.pipeline": [sys.executable, "-m", "flows.pipeline"],
}


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    if command[:2] == ["dvc", "repro"] and "Running stage" in result.stdout:
        sys.exit("dvc repro ran a stage: bring the workspace up to date (dvc repro) before benchmarking")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the median is reported")
    args = parser.parse_args()
    if subprocess.run(["dvc", "status", "--quiet"], cwd=ROOT).returncode != 0:
        sys.exit("the workspace has stale stages: run `dvc repro` first")
    for command in COMMANDS.values():  # warm-up, not timed: file caches, and the flow's first push
        seconds(command)
    medians = {name: statistics.median(seconds(command) for _ in range(args.repeat)) for name, command in COMMANDS.items()}
    baseline = medians["dvc status"]
    for name, median in medians.items():
        print(f"{name:28s} {median:6.2f} s   {median / baseline:5.1f}× dvc status")


if __name__ == "__main__":
    main()
