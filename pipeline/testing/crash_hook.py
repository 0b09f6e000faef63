"""Kills in the middle of a write, for the kill harness (pipeline/testing/kills.py), as SQLite's crash tests do it.

The harness installs this file as the `sitecustomize` of every Python process of a run (DVC, the stage, its pool's
processes). It stands alone: it runs before any package is importable. With COLORIZE_CRASH_AT=<stage>:<kind>:<n> it
watches every file opened for writing under data/, and when a process opens the n-th file of that kind, the first
write to it stores half of its bytes and then kills the whole process group with SIGKILL: what a preempted machine or
the OOM killer leaves in the worst case (with COLORIZE_CRASH_SIGNAL=SIGTERM: all its bytes, then SIGTERM).
COLORIZE_CRASH_REPORT names a file where the process says where and when it signalled; COLORIZE_CRASH_CENSUS, one where
every process lists the writes it makes (to choose n)."""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

TARGET = os.environ.get("COLORIZE_CRASH_AT", "")
REPORT = os.environ.get("COLORIZE_CRASH_REPORT", "")
CENSUS = os.environ.get("COLORIZE_CRASH_CENSUS", "")
SIGNAL = signal.Signals[os.environ.get("COLORIZE_CRASH_SIGNAL", "SIGKILL")]
STAGING = json.loads(os.environ.get("COLORIZE_CRASH_STAGING", "{}"))  # staging folder (.raw.partial) -> its stage, from kills.py


def write_kind(relative: str) -> str | None:
    """'<stage>:<kind>' of a file written under data/ (a path relative to the workspace), or None for any other file.

    Dataset stages write `image` files into their category or split folders, and their tables (`record`) beside them,
    the scrape also its `journal`; the train stage writes its `checkpoint`, its `generator`, dvclive's curves
    (`dvclive`) and the epoch's samples (`sample`)."""
    parts = Path(relative).parts
    if len(parts) < 3 or parts[0] != "data":
        return None
    folder, name = parts[1], parts[-1]
    if folder in STAGING:
        if ".journal" in parts:
            return "scrape:journal"
        return f"{STAGING[folder]}:{'image' if len(parts) > 3 else 'record'}"
    if folder == "models":
        for kind in ("checkpoint", "generator"):
            if name.startswith((f"{kind}.pt", f".{kind}.pt")):
                return f"train:{kind}"
        return None
    if folder == "training":
        return "train:sample" if "images" in parts else "train:dvclive"
    return None


def _path_of(file: Any) -> str | None:
    """The path an open() argument names (a path, or a descriptor: through /proc), relative to the working folder."""
    try:
        path = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)
        return os.path.relpath(os.path.abspath(path))
    except (OSError, TypeError, ValueError):
        return None


def _note(path: str, record: dict[str, Any]) -> None:
    """Append one line to `path`, in one write (other processes append to it too)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (json.dumps(record) + "\n").encode())
    finally:
        os.close(descriptor)


class _KilledAtWrite:
    """A file whose first write kills the process group: with SIGKILL once half of its bytes are stored (the file is
    left so), with another signal (SIGTERM) once they all are (the process then stops as that signal makes it)."""

    def __init__(self, handle: Any, kind: str, path: str) -> None:
        self._handle, self._kind, self._path, self._fired = handle, kind, path, False

    def write(self, data: Any) -> int:
        if self._fired:
            return self._handle.write(data)
        if SIGNAL == signal.SIGKILL:
            self._handle.write(data[: len(data) // 2])
            self._fire()
        written = self._handle.write(data)
        self._fire()
        return written

    def close(self) -> None:  # a file closed without a write: killed before the rename that would publish it
        if not self._fired:
            self._fire()
        self._handle.close()

    def _fire(self) -> None:
        self._fired = True
        self._handle.flush()
        os.fsync(self._handle.fileno())
        if REPORT:
            _note(REPORT, {"kind": self._kind, "path": self._path, "pid": os.getpid(), "argv": sys.argv, "at": time.time()})
        os.killpg(os.getpgrp(), SIGNAL)

    def __enter__(self) -> _KilledAtWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def install() -> None:
    """Watch this process's writes (when the harness asked for it)."""
    if not (TARGET or CENSUS):
        return
    stage, kind, nth = TARGET.rsplit(":", 2) if TARGET else ("", "", "0")
    target, opened = (f"{stage}:{kind}", int(nth)), {}
    original = io.open

    def watched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = original(file, mode, *args, **kwargs)
        if not any(flag in mode for flag in "wax+"):
            return handle
        path = _path_of(file)
        written = write_kind(path) if path else None
        if written is None:
            return handle
        opened[written] = count = opened.get(written, 0) + 1
        if CENSUS:
            _note(CENSUS, {"kind": written, "pid": os.getpid(), "n": count})
        if (written, count) == target:
            return _KilledAtWrite(handle, written, path)
        return handle

    builtins.open = io.open = watched_open


if __name__ == "sitecustomize":  # imported by name as the harness installs it, never as pipeline.testing.crash_hook
    install()
