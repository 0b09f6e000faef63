"""split: per category, split.test_per_category seeded test images; grayscale x and color y (data/split)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.artifacts import create_picture_artifact
from flows.cli import main
from flows.runners import batch_tasks, run_stage
from pipeline.config import Params
from pipeline.dag import stage
from pipeline.dataset.split import PREVIEW, SplitResult, split_dataset

(INPUT,), (OUTPUT,) = stage("split").inputs, stage("split").outputs


@flow(name="split")
def split(params: Params) -> SplitResult:
    with batch_tasks("split", params.workers) as batches:
        result = split_dataset(INPUT, OUTPUT, params.split, params.seed, batches, params.workers)
    create_table_artifact(
        key="split-counts",
        table=[{"category": category, **counts} for category, counts in result.counts.items()],
        description=f"Images per category in train ({result.total('train')}) and test ({result.total('test')})",
    )
    create_picture_artifact("split-preview", "What the model will be asked to do", [(OUTPUT / PREVIEW, "Test pairs per category: grayscale input, then color target")],
                            "Test pairs per category, input and target")
    return result


def run(params: Params) -> SplitResult:
    return run_stage(split, params)


if __name__ == "__main__":
    main("split", run, __doc__)
