"""What every source is and shares: the `Source` interface, the provenance and outcome rows, saving a file atomically,
and a resumable journal."""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Generic, TypeVar

from pipeline.core.fsutil import atomic_copy, atomic_write_bytes, category_slug
from pipeline.core.shards import MAX_MEMBER_BYTES
from pipeline.dataset.layout import Output
from pipeline.dataset.manifests import SAVED, Attempt, RawFile, columns
from pipeline.dataset.sources.params import SourceKindParams

P = TypeVar("P", bound=SourceKindParams)


@dataclass(frozen=True)
class Unit:
    """One piece of a category's scrape work: a batch of items (indexes, files, URLs: the source's choice), or none."""

    category: str
    part: int
    items: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.category}-{self.part}"


@dataclass(frozen=True)
class Scraped:
    """What one piece of scrape work produced: the files saved, and the URLs tried but not saved (with why)."""

    files: list[RawFile]
    skipped: list[Attempt] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def attempts(self) -> list[Attempt]:
        return [Attempt(row.category, row.source_url, SAVED, file=row.file) for row in self.files] + self.skipped


class Source(ABC, Generic[P]):
    """A kind of image source: it cuts each category's work into units and does one unit into the raw folder.

    A subclass is found by its module's name (`find_source`), the `source.kind` that selects it; its own params, the
    `Params` model (params.py), are `source.<kind>` in params.yaml. Instances travel (pickled) to the processes or Dask
    workers that run the units.
    """

    Params: ClassVar[type[SourceKindParams]]

    def __init__(self, params: P, per_category: int, seed: int) -> None:
        self.params = params
        self.per_category = per_category
        self.seed = seed

    @property
    def name(self) -> str:
        """The kind, as provenance records it."""
        return self.Params.kind

    @property
    def network_threads(self) -> int | None:
        """For a source whose units wait on the network: how many run at once, on threads of the flow's process (where
        a Ctrl-C reaches them through the `stop` event). None: units are CPU work for params.runner's processes."""
        return None

    @abstractmethod
    def plan(self, category: str, batch_size: int) -> Iterable[Sequence[Any]]:
        """The category's work as the items of its units, in order, batches of about `batch_size` (local sources)."""

    @abstractmethod
    def fetch(self, unit: Unit, output: RawOutput, stop: threading.Event | None) -> Scraped:
        """Do one unit into `output` (a network source: into files under output.root, resuming from its journal; it
        stops, raising `Stopped`, soon after `stop` is set)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the images come from, in a line (shown with the scrape's counts)."""


def find_source(kind: str) -> type[Source]:
    """The Source subclass that the module of that name in this package defines (`source.kind`, one of params.KINDS);
    only the selected source's module, and what it imports, is loaded."""
    module = importlib.import_module(f"{__package__}.{kind}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Source) and value.__module__ == module.__name__:
            return value
    raise LookupError(f"{module.__name__} defines no Source")


class RawOutput:
    """Where a unit of scrape work saves what it obtains: files under root/<category slug>/ (a network source's files
    are packed into shards after the scrape, in the shards layout), or the members of one shard of root, written as
    they come and published when the unit ends (a local source's unit in the shards layout): `<category slug>-<n>.<ext>`,
    n counting from `first`, so that a unit's members keep their keys when other units change."""

    def __init__(self, root: Path, shard: str = "", first: int = 0) -> None:
        self.root = root
        self._output = Output(root, shard)
        self._next = first

    @property
    def shard(self) -> str:
        return self._output.shard

    def save(self, category: str, name: str, data: bytes | bytearray, source: str, source_url: str) -> RawFile:
        """Save `data` untouched as the file `name` (or the shard's next member) and describe it."""
        if not self.shard:
            return save_raw(self.root, category, name, data, source, source_url)
        member = self._output.write(raw_member(category, self._next, name), bytes(data))
        self._next += 1
        return RawFile(member, category, source, source_url, hashlib.sha256(data).hexdigest(), len(data), shard=self.shard)

    def copy(self, category: str, name: str, reader: BinaryIO, source: str, source_url: str) -> RawFile:
        """Copy what `reader` holds untouched as the file `name` (or the shard's next member; over MAX_MEMBER_BYTES
        it is refused) and describe it."""
        if not self.shard:
            return copy_raw(self.root, category, name, reader, source, source_url)
        return self.save(category, name, reader.read(MAX_MEMBER_BYTES + 1), source, source_url)

    def __enter__(self) -> RawOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._output.__exit__(*exc_info)


def raw_member(category: str, number: int, file: str) -> str:
    """The raw shard member of a category's `number`-th photo, saved as `file`: `<category slug>-<number>.<extension>`,
    the extension lowercase letters and digits, else `bin`."""
    extension = Path(file).suffix.lstrip(".").lower()
    return f"{category_slug(category)}-{number:07d}.{extension if re.fullmatch(r'[a-z0-9]{1,10}', extension) else 'bin'}"


def save_raw(root: Path, category: str, name: str, data: bytes | bytearray, source: str, source_url: str) -> RawFile:
    """Write `data` untouched to root/<category slug>/<name> (atomically) and describe it."""
    relative = _relative(category, name)
    atomic_write_bytes(root / relative, data)
    return RawFile(relative, category, source, source_url, hashlib.sha256(data).hexdigest(), len(data))


def copy_raw(root: Path, category: str, name: str, reader: BinaryIO, source: str, source_url: str) -> RawFile:
    """Copy what `reader` holds untouched to root/<category slug>/<name>, hashing it as it streams (atomically)."""
    relative = _relative(category, name)
    digest, size = atomic_copy(reader, root / relative)
    return RawFile(relative, category, source, source_url, digest, size)


def _relative(category: str, name: str) -> str:
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"unsafe file name {name!r}")
    return f"{category_slug(category)}/{name}"


class Journal:
    """Append-only CSVs of what one piece of scrape work (a category, or part of one) has produced so far, so an
    interrupted scrape resumes: the files saved, and the URLs skipped. A process killed in the middle of an append
    leaves a row cut short: it is dropped when the journal is opened again. Not thread-safe: one writer per key."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        folder = root / ".journal"
        self.path = folder / f"{category_slug(key)}.csv"
        self.skipped_path = folder / f"{category_slug(key)}.skipped.csv"
        folder.mkdir(parents=True, exist_ok=True)
        for path in (self.path, self.skipped_path):
            _drop_torn_row(path)

    def done(self) -> list[RawFile]:
        """Rows recorded earlier whose file is still there with the recorded size."""
        rows = [RawFile(**{**row, "bytes": int(row["bytes"])}) for row in _read_rows(self.path)]
        return [row for row in rows if (self.root / row.file).is_file() and (self.root / row.file).stat().st_size == row.bytes]

    def skipped(self) -> list[Attempt]:
        return [Attempt(**row) for row in _read_rows(self.skipped_path)]

    def add(self, row: RawFile) -> None:
        _append_row(self.path, columns(RawFile), _journal_values(row))

    def reorder(self, rows: list[RawFile]) -> None:
        """Replace the saved rows, atomically, by `rows` in their order (a finished scrape's canonical order)."""
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(columns(RawFile))
        writer.writerows(_journal_values(row) for row in rows)
        atomic_write_bytes(self.path, text.getvalue().encode("utf-8"))

    def skip(self, attempt: Attempt) -> None:
        _append_row(self.skipped_path, columns(Attempt), astuple(attempt))


def _journal_values(row: RawFile) -> tuple:
    """A scraped file's journal row: the folders layout's columns (shards are packed after the scrape)."""
    return tuple(getattr(row, name) for name in columns(RawFile))


def _drop_torn_row(path: Path) -> None:
    """Cut `path` after its last newline: what follows is a row (or header) whose append a kill cut short."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _read_rows(path: Path) -> list[dict[str, str]]:
    """The journal's complete rows: every column present, none beyond them."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if None not in row and None not in row.values()]


def _append_row(path: Path, columns: list[str], values: tuple) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(columns)
        writer.writerow(values)
