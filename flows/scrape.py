"""scrape: obtain source.per_category images per category into data/raw, with provenance (manifest.csv)."""

from __future__ import annotations

import threading
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import DATA, main
from pipeline.config import Params
from pipeline.fsutil import staged_output
from pipeline.progress import track_batches
from pipeline.scrape import ScrapeJob, plan_jobs, resume_key, run_job, write_raw_manifest
from pipeline.sources.base import RawFile

RAW = DATA / "raw"


@task(cache_policy=NO_CACHE, retry_delay_seconds=[2, 10, 30])
def scrape_job(params: Params, job: ScrapeJob, root: Path, stop: threading.Event) -> list[RawFile]:
    return run_job(params, job, root, stop)


@flow(name="scrape")
def scrape(params: Params) -> dict[str, int]:
    """Tasks run concurrently (one per Bing category, or per batch of local files); an interrupted run resumes."""
    source = params.source
    retries = source.bing.retries if source.kind == "bing" else 0
    stop = threading.Event()
    with staged_output(RAW, resume_key=resume_key(params)) as staging:
        futures = [
            scrape_job.with_options(task_run_name=f"scrape-{job.name}", retries=retries).submit(params, job, staging, stop)
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
    workers = params.source.bing.concurrent_categories if params.source.kind == "bing" else params.workers
    return scrape.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))(params)


if __name__ == "__main__":
    main("scrape", run, __doc__)
