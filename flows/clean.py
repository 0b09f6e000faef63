"""clean: keep the raw images that decode and have color, as 8-bit RGB, without duplicates (data/clean)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.cli import main
from flows.runners import batch_tasks, run_stage
from pipeline.config import Params
from pipeline.dag import stage
from pipeline.dataset.clean import CleanSummary, clean_dataset
from pipeline.dataset.manifests import REJECTED

(INPUT,), (OUTPUT,) = stage("clean").inputs, stage("clean").outputs


@flow(name="clean")
def clean(params: Params) -> CleanSummary:
    with batch_tasks("clean", params.workers) as batches:
        summary = clean_dataset(INPUT, OUTPUT, params.clean, batches, params.workers)
    create_table_artifact(
        key="clean-summary",
        table=[{"category": name, **counts} for name, counts in summary.per_category.items()]
        + [{"category": "all", "kept": summary.kept, "rejected": summary.rejected, **summary.rejected_by_reason}],
        description=f"Kept {summary.kept} of {summary.total} images; the rest by reason (each file in {OUTPUT / REJECTED})",
    )
    return summary


def run(params: Params) -> CleanSummary:
    return run_stage(clean, params)


if __name__ == "__main__":
    main("clean", run, __doc__)
