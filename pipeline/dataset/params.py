"""The params of the stages that build the dataset: the layout every data stage keeps (`data`), the source (`source`,
in sources/params.py) and one section per later stage (`clean`, `resize`, `split`), assembled as DatasetParams,
which pipeline/config.py's Params extends. A leaf, so that loading params does not load the stages' code."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipeline.core.schema import StrictModel
from pipeline.dataset.sources.params import SourceParams

Layout = Literal["folders", "shards"]  # how a stage stores its images: a file each, or tar shards
ResizeMode = Literal["center_crop", "pad", "squash"]


class DataParams(StrictModel):
    layout: Layout = "folders"  # how every data stage stores its images: a file each, or tar shards (a Parquet manifest)
    shard_size: Annotated[int, Field(ge=1, le=1_000_000)] = 2000  # images per shard of a category


class CleanParams(StrictModel):
    min_side: Annotated[int, Field(ge=1)] = 64
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    min_chroma: Annotated[float, Field(ge=0.0)] = 2.0
    near_duplicate_distance: Annotated[int, Field(ge=0, le=32)] = 4
    near_duplicate_correlation: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.9


class ResizeParams(StrictModel):
    size: Annotated[int, Field(ge=8, le=4096)] = 200
    mode: ResizeMode = "center_crop"


class SplitParams(StrictModel):
    test_per_category: Annotated[int, Field(ge=1)] = 10


class DatasetParams(StrictModel):
    """The data stages' sections of params.yaml: a new stage's section goes here."""

    data: DataParams = DataParams()
    source: SourceParams = SourceParams()
    clean: CleanParams = CleanParams()
    resize: ResizeParams = ResizeParams()
    split: SplitParams = SplitParams()
