"""resize: every clean image to a resize.size² RGB PNG by resize.mode (data/resized)."""

from __future__ import annotations

from prefect import flow

from flows.cli import main
from flows.runners import batch_tasks, run_stage
from pipeline.config import Params
from pipeline.dag import stage
from pipeline.dataset.resize import ResizeResult, resize_dataset

(INPUT,), (OUTPUT,) = stage("resize").inputs, stage("resize").outputs


@flow(name="resize")
def resize(params: Params) -> ResizeResult:
    with batch_tasks("resize", params.workers) as batches:
        return resize_dataset(INPUT, OUTPUT, params.resize, batches, params.workers)


def run(params: Params) -> ResizeResult:
    return run_stage(resize, params)


if __name__ == "__main__":
    main("resize", run, __doc__)
