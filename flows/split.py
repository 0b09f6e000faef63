"""split: per category, split.test_per_category seeded test images; grayscale x and color y (data/split)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.cli import DATA, main
from pipeline.config import Params
from pipeline.dataset.split import split_dataset

SPLIT = DATA / "split"


@flow(name="split")
def split(params: Params) -> dict[str, int]:
    manifest = split_dataset(DATA / "resized", SPLIT, params.split, params.seed)
    counts = manifest.groupby(["category", "split"], sort=False).size().unstack(fill_value=0)
    create_table_artifact(
        key="split-counts",
        table=[{"category": category, **{k: int(v) for k, v in row.items()}} for category, row in counts.iterrows()],
        description="Images per category in train and test",
    )
    return {str(name): int(total) for name, total in manifest["split"].value_counts().items()}


def run(params: Params) -> dict[str, int]:
    """The stage: its flow, on the default task runner (it submits no per-item tasks)."""
    return split(params)


if __name__ == "__main__":
    main("split", run, __doc__)
