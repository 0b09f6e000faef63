"""What every source shares: the provenance row, saving a file atomically, and a resumable journal."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from pipeline.config import category_slug
from pipeline.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class RawFile:
    """One row of data/raw/manifest.csv; `file` is relative to the raw folder."""

    file: str
    category: str
    source: str
    source_url: str
    sha256: str
    bytes: int


RAW_COLUMNS = [field.name for field in fields(RawFile)]


def save_raw(root: Path, category: str, name: str, data: bytes, source: str, source_url: str) -> RawFile:
    """Write `data` untouched to root/<category slug>/<name> (atomically) and describe it."""
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"unsafe file name {name!r}")
    relative = f"{category_slug(category)}/{name}"
    atomic_write_bytes(root / relative, data)
    return RawFile(relative, category, source, source_url, hashlib.sha256(data).hexdigest(), len(data))


class Journal:
    """Append-only CSV of the files one piece of scrape work (a category, or part of one) has produced so far,
    so an interrupted scrape resumes. Not thread-safe: one writer per key."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.path = root / ".journal" / f"{category_slug(key)}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def done(self) -> list[RawFile]:
        """Rows recorded earlier whose file is still there with the recorded size."""
        if not self.path.exists():
            return []
        with open(self.path, newline="", encoding="utf-8") as handle:
            rows = [RawFile(**{**row, "bytes": int(row["bytes"])}) for row in csv.DictReader(handle)]
        return [row for row in rows if (self.root / row.file).is_file() and (self.root / row.file).stat().st_size == row.bytes]

    def add(self, row: RawFile) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(RAW_COLUMNS)
            writer.writerow(astuple(row))
