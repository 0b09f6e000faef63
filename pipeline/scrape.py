"""The scrape stage: the source's work cut into jobs, run into data/raw, and the manifest written."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import Params
from pipeline.parallel import batch_size_for, batched
from pipeline.sources.base import RAW_COLUMNS, RawFile


@dataclass(frozen=True)
class ScrapeJob:
    """One unit of scrape work: a batch of synthetic or CIFAR-10 indexes, a batch of local files, or a Bing category."""

    category: str
    part: int = 0
    indexes: tuple[int, ...] = ()
    files: tuple[tuple[Path, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.category}-{self.part}"


def resume_key(params: Params) -> str:
    """Unfinished work in the staging folder is resumed only when this (seed + source params) is unchanged."""
    described = json.dumps({"seed": params.seed, "source": params.source.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def plan_jobs(params: Params) -> list[ScrapeJob]:
    """The jobs for every category, in category order: a whole category for Bing, batches for local sources."""
    source = params.source
    if source.kind == "bing":
        return [ScrapeJob(category) for category in source.categories]
    size = batch_size_for(source.per_category * len(source.categories), params.workers)
    if source.kind == "synthetic":
        return [
            ScrapeJob(category, part, indexes=tuple(batch))
            for category in source.categories
            for part, batch in enumerate(batched(range(source.per_category), size))
        ]
    if source.kind == "cifar10":
        from pipeline.sources.cifar10 import class_indexes

        assert source.cifar10.root is not None  # guaranteed by config validation
        return [
            ScrapeJob(category, part, indexes=tuple(batch))
            for category in source.categories
            for part, batch in enumerate(batched(class_indexes(source.cifar10.root, source.cifar10.download, category, source.per_category), size))
        ]
    from pipeline.sources.folder import list_folder

    assert source.folder.path is not None  # guaranteed by config validation
    jobs = []
    for category in source.categories:
        files = list_folder(category, source.folder.path, source.per_category)
        jobs += [ScrapeJob(category, part, files=tuple(batch)) for part, batch in enumerate(batched(files, size))]
    return jobs


def run_job(params: Params, job: ScrapeJob, root: Path, stop: threading.Event | None = None) -> list[RawFile]:
    """Do one job into root/<category slug>/ and return its provenance rows; a Bing job ends early once `stop` is set."""
    source = params.source
    if source.kind == "synthetic":
        from pipeline.sources.synthetic import scrape_synthetic

        return scrape_synthetic(job.category, root, job.indexes, params.seed, source.synthetic)
    if source.kind == "bing":
        from pipeline.sources.bing import scrape_bing

        return scrape_bing(job.category, root, source.per_category, source.bing, stop)
    if source.kind == "cifar10":
        from pipeline.sources.cifar10 import save_images

        assert source.cifar10.root is not None
        return save_images(job.category, source.cifar10.root, source.cifar10.download, list(job.indexes), root)
    from pipeline.sources.folder import copy_files

    return copy_files(job.category, list(job.files), root)


def write_raw_manifest(root: Path, rows: list[RawFile]) -> dict[str, int]:
    """Write root/manifest.csv, drop the resume journal, and return the file count per category."""
    table = pd.DataFrame([asdict(row) for row in rows], columns=RAW_COLUMNS)
    table.to_csv(root / "manifest.csv", index=False)
    shutil.rmtree(root / ".journal", ignore_errors=True)
    return {str(category): int(count) for category, count in table.groupby("category", sort=False).size().items()}
