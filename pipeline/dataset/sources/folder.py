"""The `folder` source: copy up to N files per category from a local folder of category sub-folders."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import category_slug
from pipeline.core.parallel import batched
from pipeline.dataset.manifests import Attempt
from pipeline.dataset.sources.base import RawOutput, Scraped, Source, Unit
from pipeline.dataset.sources.params import FolderParams

log = logging.getLogger(__name__)


def _category_folder(root: Path, category: str) -> Path:
    for candidate in (root / category, root / category_slug(category)):
        try:
            if candidate.is_dir() and candidate.resolve().parent == root.resolve():
                return candidate
        except OSError:  # e.g. a name longer than the file system allows
            continue
    raise PipelineError(f"source.folder.path: no sub-folder {category!r} (or {category_slug(category)!r}) in {root}")


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "file"


def list_folder(category: str, folder: Path, count: int) -> list[tuple[Path, str]]:
    """The first `count` regular files (by name) of folder/<category>, each with a safe, unique target name."""
    return first_files(_category_folder(folder, category), category, count)


def first_files(source: Path, category: str, count: int) -> list[tuple[Path, str]]:
    """The first `count` regular files (by name) of the folder `source`, holding `category`'s photos, each with a safe,
    unique target name.

    Hidden files and symbolic links are skipped. Names are streamed from the directory, so a folder of
    100k files costs only its names in memory.
    """
    with os.scandir(source) as entries:
        names = sorted(entry.name for entry in entries if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."))
    if len(names) < count:
        log.warning("%s: only %d files in %s (source.per_category=%d)", category, len(names), source, count)
    chosen, used = [], set()
    for name in names[:count]:
        target = _safe_name(name)
        while target in used:
            target = f"_{target}"
        used.add(target)
        chosen.append((source / name, target))
    return chosen


def copy_files(category: str, files: list[tuple[Path, str]], output: RawOutput, source: str = "folder") -> Scraped:
    """Copy each (path, target name) untouched to `output`, recording its provenance (`source` and the file's URL); a
    file that cannot be opened (permissions, vanished) is logged and recorded as skipped, and the others are copied."""
    copied, skipped = [], []
    for path, target in files:
        url = path.resolve().as_uri()
        try:
            reader = open(path, "rb")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            log.warning("%s: skipped %s: cannot read it (%s)", category, path, reason)
            skipped.append(Attempt(category, url, "unreadable", reason))
            continue
        with reader:
            copied.append(output.copy(category, target, reader, source, url))
    return Scraped(copied, skipped)


class FolderSource(Source[FolderParams]):
    """The first per_category files (by name) of each category's sub-folder, in batches of files."""

    Params = FolderParams

    @property
    def path(self) -> Path:
        assert self.params.path is not None  # guaranteed by `check`
        return self.params.path

    def plan(self, category: str, batch_size: int) -> Iterator[Sequence[tuple[Path, str]]]:
        yield from batched(list_folder(category, self.path, self.per_category), batch_size)

    def fetch(self, unit: Unit, output: RawOutput, stop: threading.Event | None) -> Scraped:
        return copy_files(unit.category, list(unit.items), output)

    def describe(self) -> str:
        return f"the files under {self.path}"
