"""The tables the dataset stages write and the next stages read: one row type per table, and one way to write
and read each (CSV, all columns as text when read; a missing file or column is a one-line error naming it).

A stage's manifest is manifest.csv in the folders layout (`file`: a path under the stage's folder) and
manifest.parquet in the shards layout (`file`: a member of the tar shard in its `shard` column, a path under the
stage's folder); the next stage reads the layout its input was written in."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.errors import PipelineError, one_line
from pipeline.core.fsutil import atomic_file
from pipeline.core.shards import MEMBER_NAME
from pipeline.dataset.params import Layout

MANIFEST = "manifest.csv"  # the files of a stage's output folder, one row each (folders layout)
SHARDED_MANIFEST = "manifest.parquet"  # the images of a stage's output shards, one row each (shards layout)
SHARD_PATH = re.compile(r"^(shards|train|test)/[a-z0-9_-]{1,100}\.tar$")  # a shard, relative to its stage's folder
SHARDS_ONLY = {"layout": "shards"}  # the metadata of a column only the shards layout has
ATTEMPTS = "attempts.csv"  # data/raw: every source URL the scrape tried
REJECTED = "rejected.csv"  # data/clean: every raw file cleaning dropped
SAVED = "saved"  # the outcome of an attempt that saved a file


@dataclass(frozen=True)
class RawFile:
    """A row of data/raw/manifest.csv; `file` is relative to the raw folder."""

    file: str
    category: str
    source: str
    source_url: str
    sha256: str
    bytes: int
    shard: str = field(default="", metadata=SHARDS_ONLY)


@dataclass(frozen=True)
class Attempt:
    """A row of data/raw/attempts.csv: a source URL the scrape tried, and what came of it."""

    category: str
    source_url: str
    outcome: str  # SAVED, or why not: timeout, too_large, http_status, not_an_image, short_body, unreadable, ...
    detail: str = ""
    file: str = ""  # relative to the raw folder, when saved


@dataclass(frozen=True)
class CleanFile:
    """A row of data/clean/manifest.csv: a kept image, the raw file it came from, and what cleaning measured."""

    file: str
    category: str
    raw_file: str
    sha256: str
    width: int
    height: int
    chroma: float
    phash: str
    shard: str = field(default="", metadata=SHARDS_ONLY)


@dataclass(frozen=True)
class Rejection:
    """A row of data/clean/rejected.csv: a raw file cleaning dropped, and why."""

    file: str
    category: str
    reason: str
    detail: str


@dataclass(frozen=True)
class ResizedFile:
    """A row of data/resized/manifest.csv."""

    file: str
    category: str
    clean_file: str
    shard: str = field(default="", metadata=SHARDS_ONLY)


@dataclass(frozen=True)
class SplitFile:
    """A row of data/split's manifest: folders: `file` is the name under train_x/train_y or test_x/test_y, by `split`;
    shards: `file` is the sample's key, whose members `<file>.x.png` and `<file>.y.png` start at x_offset and y_offset
    of `shard`."""

    file: str
    category: str
    split: str  # "train" or "test"
    resized_file: str
    shard: str = field(default="", metadata=SHARDS_ONLY)
    x_offset: int = field(default=0, metadata=SHARDS_ONLY)
    y_offset: int = field(default=0, metadata=SHARDS_ONLY)


def columns(row: type, layout: Layout = "folders") -> list[str]:
    return [column.name for column in fields(row) if layout == "shards" or column.metadata != SHARDS_ONLY]


def _offset_columns(row: type) -> list[str]:
    return [column.name for column in fields(row) if column.type == "int" and column.metadata == SHARDS_ONLY]


def write_table(path: Path, row: type, rows: Iterable[Any] | pd.DataFrame) -> None:
    """Write `rows` (records with at least `row`'s fields, or a frame with its columns) as CSV with `row`'s columns."""
    pd.DataFrame(rows, columns=columns(row)).to_csv(path, index=False)


def read_table(path: Path, row: type) -> pd.DataFrame:
    """The table at `path`, all columns as text, checked to have `row`'s columns."""
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the stages before this one first (dvc repro)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [name for name in columns(row) if name not in table.columns]
    if missing:
        raise PipelineError(f"{path}: no column {', '.join(missing)}: not written by this pipeline's stages (dvc repro)")
    return table


def layout_of(root: Path) -> Layout:
    """The layout a stage's output folder was written in, by its manifest."""
    if (root / SHARDED_MANIFEST).is_file():
        return "shards"
    if (root / MANIFEST).is_file():
        return "folders"
    raise PipelineError(f"{root / MANIFEST} not found: run the stages before this one first (dvc repro)")


def write_manifest(root: Path, row: type, rows: Iterable[Any] | pd.DataFrame, layout: Layout) -> None:
    """A stage's manifest in `layout`: root/manifest.csv (folders), or root/manifest.parquet (shards, written atomically,
    its offsets as integers and every other column as text)."""
    if layout == "folders":
        write_table(root / MANIFEST, row, rows)
        return
    table = pd.DataFrame(rows, columns=columns(row, layout))
    offsets = _offset_columns(row)
    table = table.astype({name: "int64" if name in offsets else str for name in table.columns})
    with atomic_file(root / SHARDED_MANIFEST) as handle:
        table.to_parquet(handle, index=False)


def read_manifest(root: Path, row: type) -> tuple[pd.DataFrame, Layout]:
    """A stage's manifest, in the layout it was written in, checked: its columns, and in the shards layout every shard a
    path of the form `shards/<name>.tar` (or `train/`, `test/`) and every member one plain name."""
    layout = layout_of(root)
    if layout == "folders":
        return read_table(root / MANIFEST, row), layout
    path = root / SHARDED_MANIFEST
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many kinds for a file that is not Parquet
        raise PipelineError(f"{path}: not a readable Parquet manifest ({one_line(str(exc)) or type(exc).__name__})") from None
    missing = [name for name in columns(row, layout) if name not in table.columns]
    if missing:
        raise PipelineError(f"{path}: no column {', '.join(missing)}: not written by this pipeline's stages (dvc repro)")
    offsets = _offset_columns(row)
    for name in table.columns:
        wrong = not pd.api.types.is_integer_dtype(table[name]) if name in offsets else table[name].map(type).ne(str).any()
        if wrong:
            raise PipelineError(f"{path}: column {name} holds {table[name].dtype} values, not {'integers' if name in offsets else 'text'}")
    for name, pattern in (("shard", SHARD_PATH), ("file", MEMBER_NAME)):
        bad = table[~table[name].str.fullmatch(pattern.pattern)]
        if len(bad):
            raise PipelineError(f"{path}: row {bad.index[0]}: {name} {bad[name].iloc[0]!r} is not a {'shard path' if name == 'shard' else 'plain member name'}")
    return table, layout
