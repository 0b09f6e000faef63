"""Staged outputs: nothing appears until the work succeeds; resuming keeps work only for the same key."""

from __future__ import annotations

import pytest

from pipeline.errors import PipelineError
from pipeline.fsutil import atomic_write_bytes, read_manifest, staged_output, staging_path


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


def test_a_missing_manifest_says_which_and_what_to_do(tmp_path):
    with pytest.raises(PipelineError, match=r"clean/manifest.csv not found: run the stages before this one"):
        read_manifest(tmp_path / "clean")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"data")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.bin"]
