"""The scrape stage: the source's work cut into units, run into data/raw, and the manifest and attempts written."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.fsutil import atomic_write_json, category_slug, staged_output
from pipeline.core.parallel import batch_size_for
from pipeline.core.progress import track_batches
from pipeline.dataset.layout import Output, shard_name
from pipeline.dataset.manifests import ATTEMPTS, SAVED, Attempt, RawFile, write_manifest, write_table
from pipeline.dataset.params import DataParams, Layout
from pipeline.dataset.sources.base import RawOutput, Scraped, Source, Unit, find_source, raw_member
from pipeline.dataset.sources.params import SourceParams

log = logging.getLogger(__name__)

UnitMapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]
"""Runs fn(unit) for each unit (a `Unit` or a `Pack`, named by `.name`), where it likes, and yields the results in
order (the flow's task runner)."""


@dataclass(frozen=True)
class ScrapeResult:
    """What a scrape obtained: where from, and per category the count of each outcome (`saved`, or why not)."""

    source: str
    counts: dict[str, dict[str, int]]

    def saved(self, category: str) -> int:
        return self.counts.get(category, {}).get(SAVED, 0)


def define_source(chosen: SourceParams, seed: int) -> Source:
    """The source that `source.kind` names, with its params (`source.<kind>`)."""
    return find_source(chosen.kind)(chosen.selected, chosen.per_category, seed)


def resume_key(chosen: SourceParams, data: DataParams, seed: int) -> str:
    """Unfinished work in the staging folder is resumed only when this (seed, source and data params) is unchanged."""
    described = json.dumps({"seed": seed, "source": chosen.model_dump(mode="json"), "data": data.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def plan_units(source: Source, categories: list[str], batch_size: int) -> Iterator[Unit]:
    """The units of every category, in category order, made as they are asked for."""
    for category in categories:
        yield from (Unit(category, part, tuple(items)) for part, items in enumerate(source.plan(category, batch_size)))


def scrape_dataset(
    chosen: SourceParams, data: DataParams, raw_root: Path, seed: int, workers: int = 1, map_units: UnitMapper = map
) -> ScrapeResult:
    """Obtain chosen.per_category images per category into raw_root (resuming an interrupted run of the same params),
    in data.layout, with the manifest and attempts.csv; a Ctrl-C or SIGTERM stops a network source's transfers at once."""
    source, categories = define_source(chosen, seed), chosen.categories
    total = chosen.per_category * len(categories)
    stop = threading.Event()
    layout = data.layout
    direct = layout == "shards" and source.network_threads is None  # a local source writes its shards itself; downloads are packed
    with staged_output(raw_root, resume_key=resume_key(chosen, data, seed)) as staging:
        shard_size = data.shard_size if direct else 0
        work = partial(fetch_unit, source, staging, stop if source.network_threads else None, shard_size)  # an Event stays in this process
        units = plan_units(source, categories, shard_size or batch_size_for(total, workers))
        try:
            results = list(track_batches(map_units(work, units), total, "scrape", unit="file"))
        except BaseException:  # an error, Ctrl-C, SIGTERM
            stop.set()  # transfers in flight are abandoned at once; local batches are short anyway
            raise
        packed = pack_shards(staging, [row for result in results for row in result.files], data.shard_size, map_units) if layout == "shards" and not direct else {}
        result = ScrapeResult(source.describe(), write_raw_manifest(staging, results, layout, packed))
        for category in categories if packed else []:  # packed, and no longer in the journal: the files go
            shutil.rmtree(staging / category_slug(category), ignore_errors=True)
    for category in categories:
        if (saved := result.saved(category)) < chosen.per_category:
            log.warning("%s: %d of %d images obtained", category, saved, chosen.per_category)
    return result


def fetch_unit(source: Source, root: Path, stop: threading.Event | None, shard_size: int, unit: Unit) -> Scraped:
    """Do one unit into files under root, or (shard_size > 0) into its shard: the unit's part of its category, whose
    members are numbered from part × shard_size. A shard an interrupted run finished is not done again."""
    if not shard_size:
        with RawOutput(root) as output:
            return source.fetch(unit, output, stop)
    shard = shard_name(unit.category, unit.part)
    record = root / ".journal" / f"{Path(shard).stem}.json"  # written once the shard is in place
    if record.is_file():
        done = json.loads(record.read_text(encoding="utf-8"))
        if not done["files"] or (root / shard).is_file():
            return Scraped([RawFile(**row) for row in done["files"]], [Attempt(**row) for row in done["skipped"]])
    with RawOutput(root, shard, unit.part * shard_size) as output:  # no file saved: no shard
        scraped = source.fetch(unit, output, stop)
    atomic_write_json(record, {"files": [asdict(row) for row in scraped.files], "skipped": [asdict(row) for row in scraped.skipped]})
    return scraped


@dataclass(frozen=True)
class Pack:
    """One shard of the raw folder to write: its path, and its members as (member name, file it holds)."""

    shard: str
    members: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return f"pack-{Path(self.shard).stem}"


def plan_shards(files: list[RawFile], shard_size: int) -> list[tuple[Pack, list[RawFile]]]:
    """Each category's files, in scrape order, `shard_size` to a shard; the n-th file of a category is the member
    `<category>-<n>.<extension>`, so that more files of a category add members to its last shard, or new shards."""
    by_category: dict[str, list[RawFile]] = {}
    for row in files:
        by_category.setdefault(row.category, []).append(row)
    plans = []
    for category, rows in by_category.items():
        for start in range(0, len(rows), shard_size):
            shard = shard_name(category, start // shard_size)
            members = [(raw_member(category, start + i, row.file), row) for i, row in enumerate(rows[start : start + shard_size])]
            plans.append((Pack(shard, tuple((member, row.file) for member, row in members)),
                          [replace(row, file=member, shard=shard) for member, row in members]))
    return plans


def pack_shard(root: Path, pack: Pack) -> list[str]:
    """Write the shard of `pack` from the files under root; return its members."""
    with Output(root, pack.shard) as output:
        for member, file in pack.members:
            with open(root / file, "rb") as reader:
                output.write(member, reader)
    return [member for member, _ in pack.members]


def pack_shards(root: Path, files: list[RawFile], shard_size: int, map_units: UnitMapper = map) -> dict[str, RawFile]:
    """Pack the scraped files under root into tar shards (one task each); return the row of each packed file by the
    file's name before."""
    plans = plan_shards(files, shard_size)
    for _ in track_batches(map_units(partial(pack_shard, root), [pack for pack, _ in plans]), len(files), "pack", unit="file"):
        pass
    return {original: row for pack, rows in plans for (_, original), row in zip(pack.members, rows, strict=True)}


def write_raw_manifest(
    root: Path, results: list[Scraped], layout: Layout = "folders", packed: dict[str, RawFile] | None = None
) -> dict[str, dict[str, int]]:
    """Write the manifest in `layout` (`packed`: the rows of files packed into shards, by their name before) and
    root/attempts.csv (every source URL tried, with its outcome, and the file saved under its name in the manifest),
    drop the resume journal, and return the count of each outcome (`saved`, or the reason) per category."""
    packed = packed or {}
    files = [packed.get(row.file, row) for result in results for row in result.files]
    attempts = [asdict(replace(row, file=packed[row.file].file) if row.file in packed else row) for result in results for row in result.attempts()]
    write_manifest(root, RawFile, [asdict(row) for row in files], layout)
    write_table(root / ATTEMPTS, Attempt, attempts)
    shutil.rmtree(root / ".journal", ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    for (category, outcome), count in pd.DataFrame(attempts, columns=["category", "outcome"]).groupby(["category", "outcome"], sort=False).size().items():
        counts.setdefault(str(category), {SAVED: 0})[str(outcome)] = int(count)
    return counts
