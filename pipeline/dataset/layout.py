"""Where a stage's images are, in either layout: its work cut into units (batches of files, or one shard each: the
task count is images ÷ shard size), the images of a unit read in order, and where a unit writes them (files, or the
shard of the same name in the stage's output)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import atomic_copy, atomic_write_bytes, category_slug
from pipeline.core.parallel import batch_size_for, batched
from pipeline.core.shards import MAX_MEMBER_BYTES, ShardWriter, read_shard, split_member
from pipeline.dataset.params import Layout

SHARDS = "shards"  # the folder of a stage's shards


def shard_name(category: str, number: int) -> str:
    """The `number`-th shard of a category, relative to its stage's folder."""
    return f"{SHARDS}/{category_slug(category)}-{number:05d}.tar"


def work_units(table: pd.DataFrame, columns: Sequence[str], layout: Layout, workers: int) -> list[list[tuple]]:
    """The rows of `table` (as tuples of `columns`) cut into units of work: about 8 per worker (folders), or one per
    shard, in manifest order, each row ending with its shard (shards)."""
    if layout == "folders":
        return batched(table[list(columns)].itertuples(index=False, name=None), batch_size_for(len(table), workers))
    if (table["shard"] != table["shard"].shift()).sum() != table["shard"].nunique():
        raise PipelineError("the manifest's rows of a shard are not together: not written by this pipeline's stages (dvc repro)")
    return [list(group[[*columns, "shard"]].itertuples(index=False, name=None)) for _, group in table.groupby("shard", sort=False)]


def read_images(root: Path, files: Sequence[str], shard: str = "") -> Iterator[BinaryIO]:
    """The images `files` of a stage's folder, in order, as binary files: root/<file> (no shard), or the members of
    root/<shard> (the manifest lists them in the shard's order; one listed but missing is one line naming both)."""
    if not shard:
        for file in files:
            with open(root / file, "rb") as handle:
                yield handle
        return
    samples, found, sample = read_shard(root / shard), "", {}
    for file in files:
        key, field = split_member(file)
        while found < key and (following := next(samples, None)) is not None:
            found, sample = following
        if found != key or field not in sample:
            raise PipelineError(f"{root / shard}: no member {file!r}, which the manifest lists there (in this order)")
        yield io.BytesIO(sample[field])


class Output:
    """Where a unit of a stage's work writes its images: files under `root` (no shard), or the shard root/<shard>,
    written as a stream and in place when the block ends without error."""

    def __init__(self, root: Path, shard: str = "") -> None:
        self.root, self.shard = root, shard
        self._writer = ShardWriter(root / shard) if shard else None

    def __enter__(self) -> Output:
        return self

    def write(self, name: str, data: bytes | BinaryIO) -> str:
        """Write one image as `name` (a path under root, or a member `<key>.<field>`, in increasing key order); return it."""
        if self._writer is None:
            if isinstance(data, bytes):
                atomic_write_bytes(self.root / name, data)
            else:
                atomic_copy(data, self.root / name)
        else:
            key, field = split_member(name)
            self._writer.add(key, {field: data if isinstance(data, bytes) else data.read(MAX_MEMBER_BYTES + 1)})  # a larger one is refused
        return name

    def __exit__(self, *exc_info: object) -> None:
        if self._writer is not None:
            self._writer.__exit__(*exc_info)  # type: ignore[arg-type]

