"""Tar shards: the same samples give the same bytes; hostile or damaged shards are one line naming the shard and the
member, and nothing is ever written while reading one."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest

import pipeline.core.shards
from pipeline.core.errors import PipelineError
from pipeline.core.shards import Sample, ShardWriter, read_member, read_shard

SAMPLES = [("sky_002", {"y.png": b"color 2", "x.png": b"gray 2"}), ("fruit_001", {"x.png": b"gray 1", "y.png": b"color 1"})]


def write_shard(path: Path, samples: Iterable[tuple[str, Sample]]) -> None:
    """A shard of the samples, given in any order, written as the stages write theirs: by key, with ShardWriter."""
    with ShardWriter(path) as writer:
        for key, sample in sorted(samples, key=lambda item: item[0]):
            writer.add(key, sample)


def test_the_same_samples_in_any_order_give_the_same_bytes_and_read_back_in_key_order(tmp_path):
    write_shard(tmp_path / "a.tar", SAMPLES)
    write_shard(tmp_path / "b.tar", [(key, dict(reversed(sample.items()))) for key, sample in reversed(SAMPLES)])
    digests = {hashlib.md5((tmp_path / name).read_bytes()).hexdigest() for name in ("a.tar", "b.tar")}
    assert len(digests) == 1
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["fruit_001.x.png", "fruit_001.y.png", "sky_002.x.png", "sky_002.y.png"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tar.getmembers()} == {(0, 0, 0, "", "", 0o644)}
    assert list(read_shard(tmp_path / "a.tar")) == sorted(SAMPLES)


@pytest.mark.parametrize("key", ["../evil", "a/b", "", ".hidden"])
def test_a_key_that_is_not_one_plain_name_is_refused_when_writing_and_no_shard_appears(tmp_path, key):
    with pytest.raises(ValueError, match="is not a shard member name"):
        write_shard(tmp_path / "s.tar", [("0", {"x.png": b"1"}), (key, {"x.png": b"1"})])
    assert list(tmp_path.iterdir()) == []


def test_keys_added_out_of_order_are_refused_and_a_shard_of_no_sample_is_not_written(tmp_path):
    with pytest.raises(ValueError, match="keys go in increasing order"), ShardWriter(tmp_path / "s.tar") as writer:
        writer.add("b", {"x.png": b"1"})
        writer.add("a", {"x.png": b"1"})
    with ShardWriter(tmp_path / "s.tar"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_member_is_read_at_the_offset_the_writer_gave_and_checked_against_its_header(tmp_path):
    path = tmp_path / "s.tar"
    with ShardWriter(path) as writer:
        offsets = {key: writer.add(key, sample) for key, sample in sorted(SAMPLES)}
    with open(path, "rb") as file:
        assert read_member(file, path, offsets["sky_002"]["y.png"], "sky_002.y.png") == b"color 2"
        assert read_member(file, path, offsets["fruit_001"]["x.png"], "fruit_001.x.png") == b"gray 1"
        with pytest.raises(PipelineError, match=r"member 'sky_002.x.png': the header at offset \d+ names 'fruit_001.x.png'"):
            read_member(file, path, offsets["fruit_001"]["x.png"], "sky_002.x.png")
        with pytest.raises(PipelineError, match=r"member 'sky_002.x.png': no member header at offset 700"):
            read_member(file, path, 700, "sky_002.x.png")
    path.write_bytes(path.read_bytes()[: offsets["sky_002"]["y.png"] + 3])
    with open(path, "rb") as file, pytest.raises(PipelineError, match=r"member 'sky_002.y.png': cut short \(3 of 7 bytes\)"):
        read_member(file, path, offsets["sky_002"]["y.png"], "sky_002.y.png")


def _hostile(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A shard with a good sample, then `member`, finished as a tar is."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        good = tarfile.TarInfo("sky_001.x.png")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"abc"))
        member.size = len(data) if member.isreg() else 0
        tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (_info("../../evil.x.png"), "not a plain file name"),
        (_info("/etc/evil.x.png"), "not a plain file name"),
        (_info("sub/evil.x.png"), "not a plain file name"),
        (_info("evil..x.png"), "not a plain file name"),
        (_info("evil.x.png", tarfile.SYMTYPE, "/etc/passwd"), "not a regular file"),
        (_info("evil.x.png", tarfile.LNKTYPE, "sky_001.x.png"), "not a regular file"),
        (_info("evil.x.png", tarfile.CHRTYPE), "not a regular file"),
        (_info("evil", tarfile.DIRTYPE), "not a regular file"),
    ],
)
def test_hostile_members_are_one_line_naming_the_shard_and_member_and_nothing_is_written(tmp_path, member, problem):
    shard = _hostile(tmp_path / "hostile.tar", member, b"data")
    before = sorted(tmp_path.parent.rglob("*"))
    with pytest.raises(PipelineError) as error:
        list(read_shard(shard))
    assert str(error.value).startswith(f"{shard}: member {member.name!r}: {problem}") and "\n" not in str(error.value)
    assert sorted(tmp_path.parent.rglob("*")) == before and not Path("/etc/evil.x.png").exists()


def test_a_key_that_comes_back_after_another_and_an_oversized_member_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "s.tar"
    with tarfile.open(path, "w") as tar:
        for name in ("a.x.png", "b.x.png", "a.y.png"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"12"))
    with pytest.raises(PipelineError, match=r"member 'a.y.png': its key comes back after other keys"):
        list(read_shard(path))
    monkeypatch.setattr(pipeline.core.shards, "MAX_MEMBER_BYTES", 1)
    with pytest.raises(PipelineError, match=r"member 'a.x.png': 2 bytes, over the 1-byte limit"):
        list(read_shard(path))


@pytest.mark.parametrize("cut", ["in a member", "at a member's end", "not a tar", "empty", "whole records of garbage"])
def test_a_shard_cut_short_or_not_a_tar_is_one_line_naming_it(tmp_path, cut):
    path = tmp_path / "cut.tar"
    write_shard(path, SAMPLES)
    data = path.read_bytes()
    garbage = b"\x01" * tarfile.RECORDSIZE + bytes(tarfile.RECORDSIZE)  # ends as a finished tar does: tarfile refuses it
    path.write_bytes({"in a member": data[:700], "at a member's end": data[:1024], "not a tar": b"<html>" * 2000, "empty": b"",
                      "whole records of garbage": garbage}[cut])
    with pytest.raises(PipelineError) as error:
        list(read_shard(path))
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_a_member_over_the_limit_is_refused_when_writing_in_one_line_and_no_shard_appears(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.core.shards, "MAX_MEMBER_BYTES", 4)
    with pytest.raises(PipelineError, match=r"s.tar: member 'b.x.png': 5 bytes, over the 4-byte limit$"):
        write_shard(tmp_path / "s.tar", [("a", {"x.png": b"1234"}), ("b", {"x.png": b"12345"})])
    assert list(tmp_path.iterdir()) == []
