"""Tar shards in the WebDataset convention: each sample is a run of members `<key>.<field>` (e.g. `sky-000001.x.png`,
`sky-000001.y.png`), in key order. Written reproducibly to the byte (sorted members, fixed mtime, owner and mode, no
extended headers), so that the same samples give the same md5 and DVC sees no change; read as untrusted input, in a
stream or one member at a recorded offset, never extracted: a member that is not a plain file with a plain name, or a
shard cut short, is one line naming the shard and the member."""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pipeline.core.errors import PipelineError, one_line
from pipeline.core.fsutil import atomic_file

Sample = dict[str, bytes]  # field (e.g. "x.png") -> bytes
MEMBER_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")  # one plain file name of ≤ 100 characters (a tar header's)
MAX_MEMBER_BYTES = 256 << 20  # a larger member is refused, written or read (a 50-megapixel TIFF takes 150 MB)


def split_member(name: str) -> tuple[str, str]:
    """A member name's key and field: 'sky-000001.x.png' -> ('sky-000001', 'x.png')."""
    key, dot, field = name.partition(".")
    return key, field if dot else ""


class ShardWriter:
    """Writes one shard as a stream, samples added in increasing key order; the shard appears (atomically) when the
    block ends without error, and only if it holds a sample. `add` returns each member's data offset in the shard."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._last_key: str | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ShardWriter:
        return self

    def add(self, key: str, sample: Sample) -> dict[str, int]:
        if self._last_key is not None and key <= self._last_key:
            raise ValueError(f"{self.path}: key {key!r} added after {self._last_key!r}: keys go in increasing order")
        if self.count == 0:
            self._tar = tarfile.open(fileobj=self._stack.enter_context(atomic_file(self.path)), mode="w", format=tarfile.USTAR_FORMAT)
        offsets = {}
        for field, data in sorted(sample.items()):
            name = f"{key}.{field}"
            if not _plain_name(name) or split_member(name) != (key, field):
                raise ValueError(f"{name!r} is not a shard member name (letters, digits, _ and - in the key)")
            if len(data) > MAX_MEMBER_BYTES:
                raise PipelineError(f"{self.path}: member {name!r}: {len(data)} bytes, over the {MAX_MEMBER_BYTES}-byte limit")
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
            offsets[field] = self._tar.offset + tarfile.BLOCKSIZE  # a plain name of ≤ 100 characters: one header block
            self._tar.addfile(info, io.BytesIO(data))
        self._last_key, self.count = key, self.count + 1
        return offsets

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, traceback: object) -> None:
        try:
            if self.count and kind is None:
                self._tar.close()  # the end-of-archive blocks; the atomic file is renamed into place as the stack closes
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack.__exit__(kind, value, traceback)  # on an error in the block, the atomic file is dropped


def read_shard(path: Path) -> Iterator[tuple[str, Sample]]:
    """The samples of a shard, in its order, one at a time (memory bounded by one sample). Refused, with one line naming
    the shard and the member: a member that is not a regular file (link, device, folder), whose name is not one plain
    file name (a path, '..', an absolute name), larger than MAX_MEMBER_BYTES, or whose key comes back after another key;
    a shard that is not a tar or is cut short (even at a member's end: a shard ends with the tar's end-of-archive
    blocks)."""
    key, sample = None, {}
    for member, data in _members(path, read=True):
        member_key, field = split_member(member.name)
        if member_key != key:
            if key is not None:
                yield key, sample
            key, sample = member_key, {}
        sample[field] = data
    if key is not None:
        yield key, sample


def shard_index(path: Path) -> list[tuple[str, int]]:
    """Every member of a shard as (name, offset of its data), for `read_member`; refused as `read_shard` refuses."""
    return [(member.name, member.offset_data) for member, _ in _members(path, read=False)]


def _members(path: Path, read: bool) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """The members of a shard in order, checked, with their data when `read` (else b"")."""
    if not _ends_whole(path):
        raise PipelineError(f"{path}: cut short (no end-of-archive blocks): write it again")
    key, keys = None, set()
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                problem = _problem(member)
                member_key, _ = split_member(member.name)
                if not problem and member_key != key and member_key in keys:
                    problem = "its key comes back after other keys"
                if problem:
                    raise PipelineError(f"{path}: member {member.name!r}: {problem}")
                key = member_key
                keys.add(key)
                reader = tar.extractfile(member) if read else None
                yield member, reader.read() if reader else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PipelineError(f"{path}: not a readable tar shard ({one_line(str(exc)) or type(exc).__name__})") from None


def read_member(file: BinaryIO, path: Path, offset: int, name: str) -> bytes:
    """The data of member `name` whose data starts at `offset` of the open shard `file` (at `path`), as a manifest
    records it; checked against the member's header: a header that does not name it as a regular file of at most
    MAX_MEMBER_BYTES, or data cut short, is one line naming the shard and the member."""
    try:
        file.seek(offset - tarfile.BLOCKSIZE)
        info = tarfile.TarInfo.frombuf(file.read(tarfile.BLOCKSIZE), "utf-8", "surrogateescape")
    except (tarfile.TarError, ValueError, OSError) as exc:
        raise PipelineError(f"{path}: member {name!r}: no member header at offset {offset} ({one_line(str(exc))})") from None
    if info.name != name:
        raise PipelineError(f"{path}: member {name!r}: the header at offset {offset} names {info.name!r}")
    if problem := _problem(info):
        raise PipelineError(f"{path}: member {name!r}: {problem}")
    data = file.read(info.size)
    if len(data) != info.size:
        raise PipelineError(f"{path}: member {name!r}: cut short ({len(data)} of {info.size} bytes)")
    return data


def _plain_name(name: str) -> bool:
    return bool(MEMBER_NAME.fullmatch(name)) and ".." not in name


def _ends_whole(path: Path) -> bool:
    """Whether the file ends as a tar that was finished does: whole records, the last two blocks zeros."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            file.seek(max(0, size - 2 * tarfile.BLOCKSIZE))
            tail = file.read()
    except OSError as exc:
        raise PipelineError(f"{path}: cannot be read ({one_line(str(exc))})") from None
    return size > 0 and size % tarfile.RECORDSIZE == 0 and tail == bytes(2 * tarfile.BLOCKSIZE)


def _problem(member: tarfile.TarInfo) -> str:
    if not member.isreg():
        return "not a regular file (a link, device or folder)"
    if not _plain_name(member.name):
        return "not a plain file name (a path, '..' or an absolute name)"
    if member.size > MAX_MEMBER_BYTES:
        return f"{member.size} bytes, over the {MAX_MEMBER_BYTES}-byte limit"
    return ""
