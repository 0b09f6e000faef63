"""Atomic file and folder writes, so an interrupted stage never leaves an output that looks complete."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.core.errors import PipelineError

MAX_SLUG_LENGTH = 64  # a category's folder name, well under any file system's 255-byte limit on names


def category_slug(name: str) -> str:
    """The folder name for a category: lowercase ASCII letters, digits and '_' only (never a path), at most
    MAX_SLUG_LENGTH characters; a longer name is cut and ends in a hash of the whole name, so names stay distinct."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if len(slug) <= MAX_SLUG_LENGTH:
        return slug
    return f"{slug[: MAX_SLUG_LENGTH - 9].rstrip('_')}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file under this process's umask (mkstemp gives 0600)


UNFINISHED_WRITE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # .<name>.<mkstemp's 8 characters>.tmp: a write not yet renamed


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write, created beside `path` and renamed onto it only when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_unfinished_writes(folder: Path) -> None:
    """Delete the temporary files of atomic writes that a killed process left under `folder` (it never renamed them)."""
    for path in folder.rglob(".*.tmp"):
        if UNFINISHED_WRITE.match(path.name) and path.is_file():
            path.unlink()


def atomic_write_bytes(path: Path, data: bytes | bytearray) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_copy(reader: BinaryIO, target: Path, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """Copy what `reader` holds to `target` atomically, streaming (never the whole file in memory); returns (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    with atomic_file(target) as writer:
        while chunk := reader.read(chunk_size):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def staging_path(final: Path) -> Path:
    """Where a stage builds `final` before publishing it: a hidden sibling folder."""
    return final.with_name(f".{final.name}.partial")


def move_into_place(staging: Path, final: Path) -> None:
    """Move a finished staging folder into place, replacing any previous output."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


RESUME_KEY_FILE = ".resume-key"


class LockHeld(PipelineError):
    """Another process holds a lock this one needs."""


@contextmanager
def exclusive_lock(path: Path, owner: str, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (the holder is written in it, and released even if the process dies).
    When another process has it: LockHeld, whose message is `busy` followed by the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockHeld(f"{busy} ({holder}); try again when it has finished") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{owner}, pid {os.getpid()}, since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def staged_output(final: Path, resume_key: str | None = None) -> Iterator[Path]:
    """Yield a staging folder for `final` and move it into place when the block succeeds.

    On error or interruption the staging folder stays and `final` is untouched. The staging folder
    starts empty, unless `resume_key` is given and equals the key of the unfinished run left there:
    then the work already done is kept for the caller to resume (less the writes a kill cut short). One process at a time builds `final`:
    another one is refused (LockHeld) while this one holds the lock beside it.
    """
    staging = staging_path(final)
    lock = final.with_name(f".{final.name}.lock")
    with exclusive_lock(lock, shlex.join(sys.orig_argv), f"{staging} is being built by another process"):
        key_file = staging / RESUME_KEY_FILE
        resumable = resume_key is not None and key_file.is_file() and key_file.read_text() == resume_key
        if staging.exists() and not resumable:
            shutil.rmtree(staging)
        elif resumable:
            remove_unfinished_writes(staging)
        staging.mkdir(parents=True, exist_ok=True)
        if resume_key is not None:
            atomic_write_bytes(key_file, resume_key.encode())
        yield staging
        key_file.unlink(missing_ok=True)
        move_into_place(staging, final)
