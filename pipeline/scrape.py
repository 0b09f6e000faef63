"""The scrape stage: the source's work cut into jobs, run into data/raw, and the manifest written."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import Params
from pipeline.sources.base import RAW_COLUMNS, RawFile

JOB_SIZE = 25  # files per job for local sources: an interrupted run stops within one job


@dataclass(frozen=True)
class ScrapeJob:
    """One unit of scrape work: a range of synthetic indexes, a list of local files, or a whole Bing category."""

    category: str
    part: int = 0
    indexes: range = range(0)
    files: tuple[tuple[Path, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.category}-{self.part}"


def resume_key(params: Params) -> str:
    """Unfinished work in the staging folder is resumed only when this (seed + source params) is unchanged."""
    described = json.dumps({"seed": params.seed, "source": params.source.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def plan_jobs(params: Params) -> list[ScrapeJob]:
    """The jobs for every category, in category order."""
    source = params.source
    if source.kind == "bing":
        return [ScrapeJob(category) for category in source.categories]
    if source.kind == "synthetic":
        return [
            ScrapeJob(category, part, indexes=range(start, min(start + JOB_SIZE, source.per_category)))
            for category in source.categories
            for part, start in enumerate(range(0, source.per_category, JOB_SIZE))
        ]
    from pipeline.sources.folder import list_folder

    assert source.folder.path is not None  # guaranteed by config validation
    jobs = []
    for category in source.categories:
        files = list_folder(category, source.folder.path, source.per_category)
        starts = range(0, len(files), JOB_SIZE)
        jobs += [ScrapeJob(category, part, files=tuple(files[i : i + JOB_SIZE])) for part, i in enumerate(starts)]
    return jobs


def run_job(params: Params, job: ScrapeJob, root: Path) -> list[RawFile]:
    """Do one job into root/<category slug>/ and return its provenance rows."""
    source = params.source
    if source.kind == "synthetic":
        from pipeline.sources.synthetic import scrape_synthetic

        return scrape_synthetic(job.category, root, job.indexes, params.seed, source.synthetic)
    if source.kind == "bing":
        from pipeline.sources.bing import scrape_bing

        return scrape_bing(job.category, root, source.per_category, source.bing)
    from pipeline.sources.folder import copy_files

    return copy_files(job.category, list(job.files), root)


def write_raw_manifest(root: Path, rows: list[RawFile]) -> dict[str, int]:
    """Write root/manifest.csv, drop the resume journal, and return the file count per category."""
    table = pd.DataFrame([asdict(row) for row in rows], columns=RAW_COLUMNS)
    table.to_csv(root / "manifest.csv", index=False)
    shutil.rmtree(root / ".journal", ignore_errors=True)
    return {str(category): int(count) for category, count in table.groupby("category", sort=False).size().items()}
