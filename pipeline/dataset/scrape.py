"""The scrape stage: the source's work cut into jobs, run into data/raw, and the manifest and attempts written."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import Params
from pipeline.core.parallel import batch_size_for, batched
from pipeline.dataset.sources.base import ATTEMPT_COLUMNS, RAW_COLUMNS, SAVED, Scraped

MANIFEST_FILE = "manifest.csv"
ATTEMPTS_FILE = "attempts.csv"


@dataclass(frozen=True)
class ScrapeJob:
    """One unit of scrape work: a batch of synthetic or CIFAR-10 indexes, a batch of local files, or a Bing category."""

    category: str
    part: int = 0
    indexes: Sequence[int] = ()
    files: tuple[tuple[Path, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.category}-{self.part}"


def resume_key(params: Params) -> str:
    """Unfinished work in the staging folder is resumed only when this (seed + source params) is unchanged."""
    described = json.dumps({"seed": params.seed, "source": params.source.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def plan_jobs(params: Params) -> Iterator[ScrapeJob]:
    """The jobs for every category, in category order, made as they are asked for (planning holds no more than one
    category's file names): a whole category for Bing, batches for local sources."""
    source = params.source
    if source.kind == "bing":
        yield from (ScrapeJob(category) for category in source.categories)
        return
    size = batch_size_for(source.per_category * len(source.categories), params.workers)
    for category in source.categories:
        if source.kind == "synthetic":
            starts = range(0, source.per_category, size)
            yield from (ScrapeJob(category, part, indexes=range(start, min(start + size, source.per_category))) for part, start in enumerate(starts))
        elif source.kind == "cifar10":
            from pipeline.dataset.sources.cifar10 import class_indexes

            assert source.cifar10.root is not None  # guaranteed by config validation
            indexes = class_indexes(source.cifar10.root, source.cifar10.download, category, source.per_category)
            yield from (ScrapeJob(category, part, indexes=tuple(batch)) for part, batch in enumerate(batched(indexes, size)))
        else:
            from pipeline.dataset.sources.folder import list_folder

            assert source.folder.path is not None  # guaranteed by config validation
            files = list_folder(category, source.folder.path, source.per_category)
            yield from (ScrapeJob(category, part, files=tuple(batch)) for part, batch in enumerate(batched(files, size)))


def run_job(params: Params, job: ScrapeJob, root: Path, stop: threading.Event | None = None) -> Scraped:
    """Do one job into root/<category slug>/; a Bing job ends early (Stopped) once `stop` is set."""
    source = params.source
    if source.kind == "synthetic":
        from pipeline.dataset.sources.synthetic import scrape_synthetic

        return Scraped(scrape_synthetic(job.category, root, job.indexes, params.seed, source.synthetic))
    if source.kind == "bing":
        from pipeline.dataset.sources.bing import scrape_bing

        return scrape_bing(job.category, root, source.per_category, source.bing, stop)
    if source.kind == "cifar10":
        from pipeline.dataset.sources.cifar10 import save_images

        assert source.cifar10.root is not None
        return Scraped(save_images(job.category, source.cifar10.root, source.cifar10.download, list(job.indexes), root))
    from pipeline.dataset.sources.folder import copy_files

    return copy_files(job.category, list(job.files), root)


def write_raw_manifest(root: Path, results: list[Scraped]) -> dict[str, dict[str, int]]:
    """Write root/manifest.csv (the files) and root/attempts.csv (every source URL tried, with its outcome), drop the
    resume journal, and return the count of each outcome (`saved`, or the reason) per category."""
    files = pd.DataFrame([asdict(row) for result in results for row in result.files], columns=RAW_COLUMNS)
    attempts = pd.DataFrame([asdict(row) for result in results for row in result.attempts()], columns=ATTEMPT_COLUMNS)
    files.to_csv(root / MANIFEST_FILE, index=False)
    attempts.to_csv(root / ATTEMPTS_FILE, index=False)
    shutil.rmtree(root / ".journal", ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    for (category, outcome), count in attempts.groupby(["category", "outcome"], sort=False).size().items():
        counts.setdefault(str(category), {SAVED: 0})[str(outcome)] = int(count)
    return counts
