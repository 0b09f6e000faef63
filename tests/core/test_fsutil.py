"""Staged outputs: nothing appears until the work succeeds; resuming keeps work only for the same key; one builder at a time."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tracemalloc

import pytest

from pipeline.core.fsutil import atomic_copy, atomic_write_bytes, sha256_file, staged_output, staging_path
from pipeline.testing.workspace import REPO


def test_output_appears_only_on_success(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(final) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert not final.exists()
    assert (staging_path(final) / "half.txt").exists()
    with staged_output(final) as staging:
        (staging / "all.txt").write_text("all")
    assert sorted(p.name for p in final.iterdir()) == ["all.txt"]
    assert not staging_path(final).exists()


def test_a_new_output_replaces_the_old_one(tmp_path):
    final = tmp_path / "out"
    for name in ("first", "second"):
        with staged_output(final) as staging:
            (staging / name).write_text(name)
    assert [p.name for p in final.iterdir()] == ["second"]


def test_resume_keeps_unfinished_work_only_for_the_same_key(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), staged_output(final, resume_key="a") as staging:
        (staging / "done.txt").write_text("1")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), staged_output(final, resume_key="a") as staging:
        assert (staging / "done.txt").exists()
        raise KeyboardInterrupt
    with staged_output(final, resume_key="b") as staging:
        assert not (staging / "done.txt").exists()
    assert [p.name for p in final.iterdir()] == []


def test_a_resumed_output_drops_the_writes_a_kill_cut_short_and_keeps_everything_else(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), staged_output(final, resume_key="a") as staging:
        atomic_write_bytes(staging / "sky" / "done.png", b"png")
        (staging / "sky" / ".half.png.k3x_9qa2.tmp").write_bytes(b"pn")  # what SIGKILL leaves of atomic_write_bytes
        (staging / "sky" / "yours.tmp").write_bytes(b"a file of that name, not a write cut short")
        raise KeyboardInterrupt
    with staged_output(final, resume_key="a") as staging:
        assert sorted(path.name for path in (staging / "sky").iterdir()) == ["done.png", "yours.tmp"]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"data")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.bin"]


def test_written_files_get_the_mode_the_umask_gives_not_0600(tmp_path):
    script = (
        "import os, sys; os.umask(int(sys.argv[2], 8)); from pathlib import Path; from pipeline.core.fsutil import atomic_write_bytes, atomic_copy; "
        "atomic_write_bytes(Path(sys.argv[1]) / 'written', b'x'); atomic_copy(open(Path(sys.argv[1]) / 'written', 'rb'), Path(sys.argv[1]) / 'copied')"
    )
    for umask, mode in (("022", 0o644), ("007", 0o660)):
        folder = tmp_path / umask
        folder.mkdir()
        subprocess.run([sys.executable, "-c", script, str(folder), umask], check=True, cwd=REPO)
        assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {"written": mode, "copied": mode}


def test_a_second_process_building_the_same_output_is_refused_with_the_holder_named(tmp_path):
    final = tmp_path / "out"
    with staged_output(final) as staging:
        (staging / "mine.txt").write_text("first")
        script = "import sys; from pathlib import Path; from pipeline.core.fsutil import staged_output\nwith staged_output(Path(sys.argv[1])): pass"
        second = subprocess.run([sys.executable, "-c", script, str(final)], capture_output=True, text=True, cwd=REPO)
        assert second.returncode != 0
        last = second.stderr.strip().splitlines()[-1]
        assert f"{staging_path(final)} is being built by another process (" in last and f"pid {os.getpid()}, since " in last
        assert (staging / "mine.txt").read_text() == "first"  # the second one touched nothing
    assert (final / "mine.txt").read_text() == "first"


def test_a_copy_streams_whatever_the_file_size(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    tracemalloc.start()
    with open(big, "rb") as reader:
        digest, size = atomic_copy(reader, tmp_path / "copy.bin")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert size == 64 * 1024 * 1024 and digest == sha256_file(big) and (tmp_path / "copy.bin").stat().st_size == size
    assert peak < 8 * 1024 * 1024  # a few 1 MiB chunks, not the file
