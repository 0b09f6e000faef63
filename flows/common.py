"""What the stage flows share: the command-line entry point and running batches as Prefect tasks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.config import PARAMS_FILE, Params, load_params
from pipeline.errors import PipelineError
from pipeline.parallel import BatchMapper

T = TypeVar("T")
R = TypeVar("R")

DATA = Path("data")


@task(cache_policy=NO_CACHE)
def run_batch(pool: Executor, fn: Callable[[list[T]], list[R]], batch: list[T]) -> list[R]:
    """One batch of per-item work, run in the flow's process pool."""
    return pool.submit(fn, batch).result()


def prefect_batches(pool: Executor, name: str) -> BatchMapper:
    """A BatchMapper that shows each batch as a Prefect task run and does the work in `pool`."""

    def run(fn: Callable[[list[T]], list[R]], batches: Sequence[list[T]]) -> Iterator[list[R]]:
        futures = [
            run_batch.with_options(task_run_name=f"{name}-{index:04d}").submit(pool, fn, batch)
            for index, batch in enumerate(batches)
        ]
        return (future.result() for future in futures)

    return run


def main(stage: str, flow: Callable[[Params], Any], description: str) -> None:
    """`python -m flows.<stage>`: validate params.yaml, run the flow, and turn known failures into one line."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{stage}", description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: %(default)s)")
    args = parser.parse_args()
    try:
        flow(load_params(args.params))
    except PipelineError as exc:
        sys.exit(f"{stage}: error: {exc}")
    except KeyboardInterrupt:
        sys.exit(f"{stage}: interrupted; its output was not published; run it again to finish (finished work is kept)")
