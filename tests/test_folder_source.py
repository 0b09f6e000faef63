"""The folder source: bytes copied untouched with provenance; symbolic links and hidden files skipped."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.errors import PipelineError
from pipeline.sources.folder import copy_files, list_folder


def test_copies_the_first_files_by_name_untouched(tmp_path):
    source = tmp_path / "mine" / "Sea Side"
    source.mkdir(parents=True)
    for name in ("b.jpg", "a.png", "c d.jpeg", "c_d.jpeg", ".hidden.jpg"):
        (source / name).write_bytes(name.encode() * 10)
    (source / "link.jpg").symlink_to("/etc/passwd")
    rows = copy_files("Sea Side", list_folder("Sea Side", tmp_path / "mine", 2), tmp_path / "raw")
    assert [r.file for r in rows] == ["sea_side/a.png", "sea_side/b.jpg"]
    for row in rows:
        data = (tmp_path / "raw" / row.file).read_bytes()
        assert row.sha256 == hashlib.sha256(data).hexdigest() and row.bytes == len(data)
        assert row.source == "folder" and row.source_url.startswith("file://")
    targets = [target for _, target in list_folder("Sea Side", tmp_path / "mine", 10)]
    assert targets == ["a.png", "b.jpg", "c_d.jpeg", "_c_d.jpeg"]


def test_a_missing_category_folder_is_a_clear_error(tmp_path):
    (tmp_path / "mine").mkdir()
    with pytest.raises(PipelineError, match="no sub-folder 'sky'"):
        list_folder("sky", tmp_path / "mine", 5)
