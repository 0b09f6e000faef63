"""scrape: obtain source.per_category images per category into data/raw, with provenance (manifest.csv)."""

from __future__ import annotations

import threading
from functools import partial

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.logging import get_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import DATA, batch_tasks, main, run_stage
from pipeline.config import Params
from pipeline.fsutil import staged_output
from pipeline.progress import track_batches
from pipeline.scrape import plan_jobs, resume_key, run_job, write_raw_manifest

RAW = DATA / "raw"


@flow(name="scrape")
def scrape(params: Params) -> dict[str, int]:
    """Tasks run concurrently (one per Bing category, or per batch of local files); an interrupted run resumes."""
    source = params.source
    bing = source.kind == "bing"
    stop = threading.Event()
    with staged_output(RAW, resume_key=resume_key(params)) as staging, batch_tasks("scrape", params.workers, processes=False) as tasks:
        work = partial(run_job, params, root=staging, stop=stop if bing else None)  # only Bing stops early (and never runs on Dask)
        futures = [
            tasks.submit(work, job, f"scrape-{job.name}", retries=source.bing.retries if bing else 0, retry_delay_seconds=[2, 10, 30])
            for job in plan_jobs(params)
        ]
        total = source.per_category * len(source.categories)
        try:
            done = track_batches((future.result() for future in futures), total, "scrape", unit="file")
            counts = write_raw_manifest(staging, [row for rows in done for row in rows])
        except KeyboardInterrupt:
            stop.set()  # running Bing downloads end soon; local batches are short anyway
            raise
    logger = get_run_logger()
    for category in source.categories:
        if counts.get(category, 0) < source.per_category:
            logger.warning("%s: %d of %d images obtained", category, counts.get(category, 0), source.per_category)
    create_table_artifact(
        key="scrape-counts",
        table=[{"category": category, "files": counts.get(category, 0)} for category in source.categories],
        description=f"Files obtained per category from the {source.kind} source",
    )
    return counts


def run(params: Params) -> dict[str, int]:
    """Local sources on params.runner; Bing always on `concurrent_categories` local threads: its downloads wait on
    the network, not the CPU, and Ctrl-C reaches them through a threading.Event, which stays in this process."""
    if params.source.kind != "bing":
        return run_stage(scrape, params)
    if params.runner.kind == "dask":
        get_logger("flows.scrape").info("scrape: the Bing source runs on local threads, not on Dask")
    return scrape.with_options(task_runner=ThreadPoolTaskRunner(max_workers=params.source.bing.concurrent_categories))(params)


if __name__ == "__main__":
    main("scrape", run, __doc__)
