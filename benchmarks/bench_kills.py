"""Kill `dvc repro` at seeded random moments, again and again, and check that every run resumes (pipeline/testing/kills.py).

    python benchmarks/bench_kills.py [--kills 30] [--chain 4] [--seed 0] [--work DIR] [--prefect-api-url URL]

In fresh copies of the repository with tiny params (2 categories of 14 synthetic images, 4 epochs), chains of kills:
each run of a chain is killed once, with SIGKILL to its whole process group in the middle of a write (the n-th of its
kind, n at random), or with SIGKILL or SIGTERM at a random moment of a stage or of the whole run (DVC's own work between
stages included); every kind of write, every stage and the whole run are dealt once before any again. The next run resumes
what it left, and the last one runs to the end. Until --kills kills have landed. Each kill must leave no process of the
run (each stage's temporary Prefect server included, unless --prefect-api-url names a running one), no run may print a
traceback, SIGTERM must end a run within seconds in one line, and each chain's final data/ must match an uninterrupted
run's (the baseline, run first): the dataset stages byte for byte, the training with one history row, one curve point
and one sample per epoch. Prints where the kills landed and what failed; exits with status 1 if anything did.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pipeline.dag import stage_names
from pipeline.testing.kills import Harness, KillPlan, Run, differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30, help="kills that land (default: %(default)s)")
    parser.add_argument("--chain", type=int, default=4, help="kills planned per chain before the run to the end (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill plans (default: %(default)s)")
    parser.add_argument("--work", type=Path, help="folder for the workspaces (default: a temporary one)")
    parser.add_argument("--prefect-api-url", help="a running Prefect server for the stages (default: each starts its own)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-kills-"))
    harness = Harness(work, args.prefect_api_url)

    baseline, env = harness.workspace("baseline")
    writes, stage_seconds, seconds = harness.census(baseline, env)
    print(f"uninterrupted run: {seconds:.1f} s; per stage: {', '.join(f'{stage} {time:.1f} s' for stage, time in stage_seconds.items())}")
    print(f"writes per process: {writes}", flush=True)
    plan = KillPlan(random.Random(args.seed), writes, stage_seconds, seconds)

    runs: list[Run] = []
    failures: list[str] = []
    chain_seconds: list[float] = []
    chain = 0
    while sum(run.landed is not None for run in runs) < args.kills:
        chain += 1
        repo, env = harness.workspace(f"chain-{chain:03d}")
        started = time.monotonic()
        for kill in plan.chain(args.chain):
            run = harness.repro(repo, env, kill)
            runs.append(run)
            print(f"chain {chain}: {kill}: {'landed in ' + run.landed if run.landed else 'missed (the run ended first)'}", flush=True)
            failures += [f"chain {chain}, {kill}: {problem}" for problem in run.problems]
            if run.landed is None:  # the run went to the end: there is nothing left to kill in this chain
                break
        last = harness.repro(repo, env)
        chain_seconds.append(time.monotonic() - started)
        failures += [f"chain {chain}, the run to the end: {problem}" for problem in last.problems]
        failures += [f"chain {chain}: {difference}" for difference in differences(baseline, repo, env)]

    landed = [run for run in runs if run.landed is not None]
    print(f"\n{len(landed)} kills landed ({len(runs) - len(landed)} missed) in {chain} chains, seed {args.seed}")
    places = Counter((run.landed.split(":")[0], run.landed.split(":")[1] if ":" in run.landed else "a random moment", run.kill.signum.name)
                     for run in landed)
    print(f"{'stage':10s} {'where':18s} {'signal':8s} kills")
    for stage in [*stage_names(), "dvc"]:
        for (where_stage, where, signal_name), count in sorted(places.items()):
            if where_stage == stage:
                print(f"{stage:10s} {where:18s} {signal_name:8s} {count:5d}")
    terminated = [run.seconds for run in landed if run.kill.signum.name == "SIGTERM" and run.seconds is not None]
    if terminated:
        print(f"SIGTERM to the end of the run's last process: median {statistics.median(terminated):.1f} s, max {max(terminated):.1f} s")
    print(f"processes left after a kill: {sum(len(run.left) for run in runs)}")
    print(f"a chain (its kills, resumes and the run to the end) against one uninterrupted run: "
          f"median {statistics.median(chain_seconds):.1f} s, {statistics.median(chain_seconds) / seconds:.2f}×")
    print(f"failed: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
