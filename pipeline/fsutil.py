"""Atomic file and folder writes, so an interrupted stage never leaves an output that looks complete."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> pd.DataFrame:
    """A stage's manifest.csv, all columns as text; a missing one is a clear error."""
    path = folder / "manifest.csv"
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the stages before this one first (dvc repro)")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def staging_path(final: Path) -> Path:
    """Where a stage builds `final` before publishing it: a hidden sibling folder."""
    return final.with_name(f".{final.name}.partial")


def publish(staging: Path, final: Path) -> None:
    """Move a finished staging folder into place, replacing any previous output."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


RESUME_KEY_FILE = ".resume-key"


@contextmanager
def staged_output(final: Path, resume_key: str | None = None) -> Iterator[Path]:
    """Yield a staging folder for `final` and publish it when the block succeeds.

    On error or interruption the staging folder stays and `final` is untouched. The staging folder
    starts empty, unless `resume_key` is given and equals the key of the unfinished run left there:
    then the work already done is kept for the caller to resume.
    """
    staging = staging_path(final)
    key_file = staging / RESUME_KEY_FILE
    resumable = resume_key is not None and key_file.is_file() and key_file.read_text() == resume_key
    if staging.exists() and not resumable:
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    if resume_key is not None:
        key_file.write_text(resume_key)
    yield staging
    key_file.unlink(missing_ok=True)
    publish(staging, final)
