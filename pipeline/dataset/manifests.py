"""The tables the dataset stages write and the next stages read: one row type per table, and one way to write
and read each (CSV, all columns as text when read; a missing file or column is a one-line error naming it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.errors import PipelineError

MANIFEST = "manifest.csv"  # the files of a stage's output folder, one row each
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


@dataclass(frozen=True)
class SplitFile:
    """A row of data/split/manifest.csv: `file` is the name under train_x/train_y or test_x/test_y, by `split`."""

    file: str
    category: str
    split: str  # "train" or "test"
    resized_file: str


def columns(row: type) -> list[str]:
    return [column.name for column in fields(row)]


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
