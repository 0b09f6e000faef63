"""The scrape stage: the source's work cut into units, run into data/raw, and the manifest and attempts written."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from pipeline.config import Params
from pipeline.core.fsutil import staged_output
from pipeline.core.parallel import batch_size_for
from pipeline.core.progress import track_batches
from pipeline.dataset.manifests import ATTEMPTS, MANIFEST, SAVED, Attempt, RawFile, write_table
from pipeline.dataset.sources import SOURCES
from pipeline.dataset.sources.base import Scraped, Source, Unit

log = logging.getLogger(__name__)

UnitMapper = Callable[[Callable[[Unit], Scraped], Iterable[Unit]], Iterator[Scraped]]
"""Runs fn(unit) for each unit, where it likes, and yields the results in order (the flow's task runner)."""


@dataclass(frozen=True)
class ScrapeResult:
    """What a scrape obtained: where from, and per category the count of each outcome (`saved`, or why not)."""

    source: str
    counts: dict[str, dict[str, int]]

    def saved(self, category: str) -> int:
        return self.counts.get(category, {}).get(SAVED, 0)


def define_source(params: Params) -> Source:
    """The source that params.source.kind names, with its params (`source.<kind>`)."""
    chosen = params.source
    return SOURCES[chosen.kind](getattr(chosen, chosen.kind), chosen.per_category, params.seed)


def resume_key(params: Params) -> str:
    """Unfinished work in the staging folder is resumed only when this (seed + source params) is unchanged."""
    described = json.dumps({"seed": params.seed, "source": params.source.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def plan_units(source: Source, categories: list[str], batch_size: int) -> Iterator[Unit]:
    """The units of every category, in category order, made as they are asked for."""
    for category in categories:
        yield from (Unit(category, part, tuple(items)) for part, items in enumerate(source.plan(category, batch_size)))


def scrape_dataset(params: Params, raw_root: Path, map_units: UnitMapper = map) -> ScrapeResult:
    """Obtain source.per_category images per category into raw_root (resuming an interrupted run of the same params),
    with manifest.csv and attempts.csv; a Ctrl-C or SIGTERM stops a network source's transfers at once."""
    source, categories = define_source(params), params.source.categories
    total = params.source.per_category * len(categories)
    stop = threading.Event()
    with staged_output(raw_root, resume_key=resume_key(params)) as staging:
        work = partial(source.fetch, root=staging, stop=stop if source.network_threads else None)  # an Event stays in this process
        units = plan_units(source, categories, batch_size_for(total, params.workers))
        try:
            results = list(track_batches(map_units(work, units), total, "scrape", unit="file"))
        except BaseException:  # an error, Ctrl-C, SIGTERM
            stop.set()  # transfers in flight are abandoned at once; local batches are short anyway
            raise
        result = ScrapeResult(source.describe(), write_raw_manifest(staging, results))
    for category in categories:
        if (saved := result.saved(category)) < params.source.per_category:
            log.warning("%s: %d of %d images obtained", category, saved, params.source.per_category)
    return result


def write_raw_manifest(root: Path, results: list[Scraped]) -> dict[str, dict[str, int]]:
    """Write root/manifest.csv (the files) and root/attempts.csv (every source URL tried, with its outcome), drop the
    resume journal, and return the count of each outcome (`saved`, or the reason) per category."""
    attempts = [asdict(row) for result in results for row in result.attempts()]
    write_table(root / MANIFEST, RawFile, [asdict(row) for result in results for row in result.files])
    write_table(root / ATTEMPTS, Attempt, attempts)
    shutil.rmtree(root / ".journal", ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    for (category, outcome), count in pd.DataFrame(attempts, columns=["category", "outcome"]).groupby(["category", "outcome"], sort=False).size().items():
        counts.setdefault(str(category), {SAVED: 0})[str(outcome)] = int(count)
    return counts
