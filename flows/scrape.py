"""scrape: obtain source.per_category images per category into data/raw, with provenance (manifest.csv) and the
outcome of every source URL tried (attempts.csv)."""

from __future__ import annotations

import threading
from functools import partial

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.logging import get_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cli import DATA, main
from flows.runners import batch_tasks, run_stage
from pipeline.config import Params
from pipeline.core.fsutil import staged_output
from pipeline.core.progress import track_batches
from pipeline.dataset.scrape import plan_jobs, resume_key, run_job, write_raw_manifest
from pipeline.dataset.sources.base import SAVED

RAW = DATA / "raw"


@flow(name="scrape")
def scrape(params: Params) -> dict[str, dict[str, int]]:
    """Tasks run concurrently (one per Bing category, or per batch of local files); an interrupted run resumes."""
    source = params.source
    bing = source.kind == "bing"
    stop = threading.Event()
    threads = source.bing.concurrent_categories if bing else params.workers  # the task runner's (see `run`)
    with staged_output(RAW, resume_key=resume_key(params)) as staging, batch_tasks("scrape", threads, processes=False) as tasks:
        work = partial(run_job, params, root=staging, stop=stop if bing else None)  # Bing never runs on Dask
        results = tasks.map(work, plan_jobs(params), lambda _, job: f"scrape-{job.name}")
        try:
            counts = write_raw_manifest(staging, list(track_batches(results, source.per_category * len(source.categories), "scrape", unit="file")))
        except KeyboardInterrupt:
            stop.set()  # Bing transfers in flight are abandoned at once; local batches are short anyway
            raise
    logger = get_run_logger()
    for category in source.categories:
        if (saved := counts.get(category, {}).get(SAVED, 0)) < source.per_category:
            logger.warning("%s: %d of %d images obtained", category, saved, source.per_category)
    columns = [SAVED, *sorted({outcome for per_outcome in counts.values() for outcome in per_outcome} - {SAVED})]
    create_table_artifact(
        key="scrape-counts",
        table=[{"category": category, **{column: counts.get(category, {}).get(column, 0) for column in columns}} for category in source.categories],
        description=f"Files saved per category from the {source.kind} source, and the source URLs not saved, by reason "
                    "(each one is in data/raw/attempts.csv)",
    )
    return counts


def run(params: Params) -> dict[str, dict[str, int]]:
    """Local sources on params.runner; Bing always on `concurrent_categories` local threads: its downloads wait on
    the network, not the CPU, and Ctrl-C reaches them through a threading.Event, which stays in this process."""
    if params.source.kind != "bing":
        return run_stage(scrape, params)
    if params.runner.kind == "dask":
        get_logger("flows.scrape").info("scrape: the Bing source runs on local threads, not on Dask")
    return scrape.with_options(task_runner=ThreadPoolTaskRunner(max_workers=params.source.bing.concurrent_categories))(params)


if __name__ == "__main__":
    main("scrape", run, __doc__)
