"""scrape: obtain source.per_category images per category into data/raw, with provenance (manifest.csv) and the
outcome of every source URL tried (attempts.csv)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.logging import get_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cli import call_flow, main
from flows.runners import batch_tasks, run_stage
from pipeline.config import Params
from pipeline.dag import stage
from pipeline.dataset.manifests import ATTEMPTS, SAVED
from pipeline.dataset.scrape import ScrapeResult, define_source, scrape_dataset

(OUTPUT,) = stage("scrape").outputs


@flow(name="scrape")
def scrape(params: Params) -> ScrapeResult:
    """Units run concurrently as tasks (a batch of local files, or a network source's unit); an interrupted run resumes."""
    threads = define_source(params.source, params.seed).network_threads or params.workers  # the task runner's (see `run`)
    with batch_tasks("scrape", threads, processes=False) as tasks:
        result = scrape_dataset(params.source, params.data, OUTPUT, params.seed, params.workers,
                                lambda fn, units: tasks.map(fn, units, lambda _, unit: f"scrape-{unit.name}"))
    outcomes = {outcome for counts in result.counts.values() for outcome in counts} - {SAVED}
    create_table_artifact(
        key="scrape-counts",
        table=[{"category": category, **{column: result.counts.get(category, {}).get(column, 0) for column in [SAVED, *sorted(outcomes)]}}
               for category in params.source.categories],
        description=f"Files saved per category from {result.source}, and the source URLs not saved, by reason "
                    f"(each one is in {OUTPUT / ATTEMPTS})",
    )
    return result


def run(params: Params) -> ScrapeResult:
    """A local source on params.runner; a network source on its own local threads: its downloads wait on the network,
    not the CPU, and Ctrl-C reaches them through a threading.Event, which stays in this process."""
    threads = define_source(params.source, params.seed).network_threads
    if threads is None:
        return run_stage(scrape, params)
    if params.runner.kind == "dask":
        get_logger("flows.scrape").info("scrape: the %s source runs on local threads, not on Dask", params.source.kind)
    return call_flow(scrape.with_options(task_runner=ThreadPoolTaskRunner(max_workers=threads)), params)


if __name__ == "__main__":
    main("scrape", run, __doc__)
