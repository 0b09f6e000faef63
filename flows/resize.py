"""resize: every clean image to a resize.size² RGB PNG by resize.mode (data/resized)."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import DATA, main, prefect_batches
from pipeline.config import Params
from pipeline.parallel import process_pool
from pipeline.resize import resize_dataset

RESIZED = DATA / "resized"


@flow(name="resize")
def resize(params: Params) -> int:
    with process_pool(params.workers) as pool:
        return resize_dataset(DATA / "clean", RESIZED, params.resize, prefect_batches(pool, "resize"), params.workers)


def run(params: Params) -> int:
    return resize.with_options(task_runner=ThreadPoolTaskRunner(max_workers=params.workers))(params)


if __name__ == "__main__":
    main("resize", run, __doc__)
