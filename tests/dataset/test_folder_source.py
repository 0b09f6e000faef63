"""The folder source: bytes copied untouched with provenance; symbolic links, hidden and unreadable files skipped."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from pipeline.core.errors import PipelineError
from pipeline.dataset.sources.base import RawOutput
from pipeline.dataset.sources.folder import copy_files, list_folder


def test_copies_the_first_files_by_name_untouched(tmp_path):
    source = tmp_path / "mine" / "Sea Side"
    source.mkdir(parents=True)
    for name in ("b.jpg", "a.png", "c d.jpeg", "c_d.jpeg", ".hidden.jpg"):
        (source / name).write_bytes(name.encode() * 10)
    (source / "link.jpg").symlink_to("/etc/passwd")
    rows = copy_files("Sea Side", list_folder("Sea Side", tmp_path / "mine", 2), RawOutput(tmp_path / "raw")).files
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


def test_a_file_that_vanished_after_listing_is_skipped_logged_and_recorded(tmp_path, caplog):
    source = tmp_path / "mine" / "sky"
    source.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (source / name).write_bytes(name.encode())
    listed = list_folder("sky", tmp_path / "mine", 3)
    (source / "b.jpg").unlink()
    result = copy_files("sky", listed, RawOutput(tmp_path / "raw"))
    assert [row.file for row in result.files] == ["sky/a.jpg", "sky/c.jpg"]
    assert [(a.source_url, a.outcome, a.detail) for a in result.skipped] == [((source / "b.jpg").as_uri(), "unreadable", "No such file or directory")]
    assert f"sky: skipped {source / 'b.jpg'}: cannot read it (No such file or directory)" in caplog.text


def _without_root_file_access(command: list[str]) -> list[str]:
    """As root, the command runs without the capabilities that let root read any file (so chmod 000 means unreadable)."""
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command] if os.geteuid() == 0 else command


def test_the_scrape_stage_goes_on_past_an_unreadable_file_and_records_it(tmp_path, prefect_api_url):
    source = tmp_path / "mine" / "sky"
    source.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (source / name).write_bytes(name.encode() * 100)
    (source / "b.jpg").chmod(0)
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump({"source": {"kind": "folder", "categories": ["sky"], "per_category": 3,
                                                                  "folder": {"path": str(tmp_path / "mine")}}}))
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    result = subprocess.run(_without_root_file_access([sys.executable, "-m", "flows.scrape"]), cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert pd.read_csv(work / "data/raw/manifest.csv")["file"].tolist() == ["sky/a.jpg", "sky/c.jpg"]
    attempts = pd.read_csv(work / "data/raw/attempts.csv", keep_default_na=False)
    assert attempts[["source_url", "outcome", "detail"]].values.tolist() == [
        [(source / "a.jpg").as_uri(), "saved", ""], [(source / "c.jpg").as_uri(), "saved", ""],
        [(source / "b.jpg").as_uri(), "unreadable", "Permission denied"],
    ]
    assert f"sky: skipped {source / 'b.jpg'}: cannot read it (Permission denied)" in result.stdout + result.stderr
