"""The data stages in either layout (data.layout): the same images either way; shards that are the same bytes on every
run, that change only where photos were added, and that are refused in one line when hostile or damaged."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import Params, parse_params
from pipeline.core.errors import PipelineError
from pipeline.dag import data_stages, stage
from pipeline.dataset.clean import clean_dataset
from pipeline.dataset.manifests import SHARDED_MANIFEST, RawFile, read_manifest
from pipeline.dataset.resize import resize_dataset
from pipeline.dataset.scrape import fetch_unit
from pipeline.dataset.sources.base import Unit
from pipeline.dataset.sources.folder import FolderParams, FolderSource
from pipeline.dataset.split import split_dataset
from pipeline.model.data import SplitPairs
from pipeline.testing.workspace import tiny_params
from tests.stages import scrape_with

DATA_OUTPUTS = [out for name in data_stages() for out in stage(name).outputs]  # data/raw to data/split


def params(layout: str, categories: tuple[str, ...] = ("sky", "fruit"), per_category: int = 14) -> Params:
    raw = tiny_params()
    raw["workers"] = 1
    raw["source"].update(categories=list(categories), per_category=per_category)
    raw["data"] = {"layout": layout, "shard_size": 4}
    return parse_params(raw)


def build(root: Path, chosen: Params) -> Path:
    """scrape → split under root/data, as the stages do; returns root/data."""
    data = root / "data"
    scrape_with(chosen, data / "raw")
    clean_dataset(data / "raw", data / "clean", chosen.clean)
    resize_dataset(data / "clean", data / "resized", chosen.resize)
    split_dataset(data / "resized", data / "split", chosen.split, chosen.seed)
    return data


def digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.md5(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def colors(data: Path) -> list[bytes]:
    pairs = [SplitPairs(data / "split", split) for split in ("train", "test")]
    return sorted(part[i][1].numpy().tobytes() for part in pairs for i in range(len(part)))


def test_shards_hold_what_folders_hold_in_a_few_files_with_parquet_manifests(tmp_path):
    folders, shards = build(tmp_path / "folders", params("folders")), build(tmp_path / "shards", params("shards"))
    assert colors(folders) == colors(shards) and len(colors(shards)) > 10
    for output in DATA_OUTPUTS:
        names = {path.name for path in (shards / output.name).iterdir()}
        assert SHARDED_MANIFEST in names and "manifest.csv" not in names
        files = [path for path in (shards / output.name).rglob("*") if path.is_file()]
        assert all(path.suffix in {".tar", ".parquet", ".csv", ".json", ".png"} for path in files), files
    raw, layout = read_manifest(shards / "raw", RawFile)
    assert layout == "shards" and raw.groupby("category")["shard"].nunique().to_dict() == {"fruit": 4, "sky": 4}  # 14 photos, 4 to a shard
    assert sorted(path.name for path in (shards / "split" / "test").iterdir()) and (shards / "split" / "train").is_dir()
    split = pd.read_parquet(shards / "split" / SHARDED_MANIFEST)
    assert split.groupby(["category", "split"]).size().to_dict() == pd.read_csv(folders / "split" / "manifest.csv").groupby(["category", "split"]).size().to_dict()
    with tarfile.open(shards / "split" / split["shard"].iloc[0]) as tar:
        assert tar.getnames()[:2] == [f"{split['file'].iloc[0]}.x.png", f"{split['file'].iloc[0]}.y.png"]


def test_shards_are_the_same_bytes_on_every_run_and_an_added_photo_changes_one_shard(tmp_path):
    one = build(tmp_path / "one", params("shards", ("sky",), 13))
    two = build(tmp_path / "two", params("shards", ("sky",), 13))
    assert digests(one) == digests(two)
    more = build(tmp_path / "more", params("shards", ("sky",), 14))
    for folder in ("raw", "clean", "resized"):
        before, after = ({name: md5 for name, md5 in digests(data / folder).items() if name.endswith(".tar")} for data in (one, more))
        changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
        assert changed == {"shards/sky-00003.tar"}, (folder, changed)
    before, after = (digests(data / "split") for data in (one, more))
    changed = {name for name in before.keys() | after.keys() if name.endswith(".tar") and before.get(name) != after.get(name)}
    assert changed - {"train/sky-00003.tar", "test/sky-00003.tar"} <= {"train/sky-00000.tar", "train/sky-00001.tar", "train/sky-00002.tar"}
    assert len(changed) <= 3  # its own shard, and when it is drawn for test, the shard of the image it sends to train


def test_a_local_source_writes_its_shards_directly_and_an_interrupted_scrape_keeps_the_shards_it_finished(tmp_path):
    chosen = params("shards")
    whole = tmp_path / "whole" / "raw"
    scrape_with(chosen, whole)

    def interrupted_after(units_done: int):
        def map_units(fn, units):
            for done, unit in enumerate(units):
                if done == units_done:
                    raise KeyboardInterrupt  # Ctrl-C, a kill: the units done so far stay in the staging folder
                yield fn(unit)
        return map_units

    raw = tmp_path / "resumed" / "raw"
    with pytest.raises(KeyboardInterrupt):
        scrape_with(chosen, raw, interrupted_after(3))
    staged = raw.parent / ".raw.partial"
    finished = {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (staged / "shards").glob("*.tar")}
    assert len(finished) == 3 and not [path for path in staged.iterdir() if path.is_dir() and path.name not in {"shards", ".journal"}]
    scrape_with(chosen, raw)
    assert digests(raw) == digests(whole)
    assert {name: (path.stat().st_ino, path.stat().st_mtime_ns) for name in finished for path in [raw / "shards" / name]} == finished


def test_a_folder_source_file_gone_before_its_copy_is_recorded_and_its_shard_holds_the_rest_numbered_from_its_start(tmp_path):
    mine = tmp_path / "mine" / "sky"
    mine.mkdir(parents=True)
    for index in range(4):
        (mine / f"{index}.jpg").write_bytes(b"photo %d" % index)
    source = FolderSource(FolderParams(path=tmp_path / "mine"), per_category=4, seed=1)
    unit = Unit("sky", 1, tuple(next(iter(source.plan("sky", 4)))))  # the category's second shard
    (mine / "2.jpg").unlink()
    scraped = fetch_unit(source, tmp_path / "raw", None, 4, unit)
    assert [(row.file, row.shard) for row in scraped.files] == [(f"sky-000000{n}.jpg", "shards/sky-00001.tar") for n in (4, 5, 6)]
    assert [(attempt.source_url, attempt.outcome) for attempt in scraped.skipped] == [((mine / "2.jpg").as_uri(), "unreadable")]
    with tarfile.open(tmp_path / "raw" / "shards" / "sky-00001.tar") as tar:
        assert tar.getnames() == ["sky-0000004.jpg", "sky-0000005.jpg", "sky-0000006.jpg"]
        assert tar.extractfile("sky-0000006.jpg").read() == b"photo 3"


def _add_member(shard: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    """Rewrite `shard` with `member` appended (a hostile one)."""
    with tarfile.open(shard) as tar:
        kept = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    with tarfile.open(shard, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, content in kept:
            tar.addfile(info, io.BytesIO(content))
        member.size = len(data) if member.isreg() else 0
        tar.addfile(member, io.BytesIO(data) if member.isreg() else None)


@pytest.mark.parametrize("hostile", ["traversal", "symlink", "device", "truncated"])
def test_a_hostile_or_damaged_raw_shard_stops_clean_in_one_line_naming_it_and_writes_nothing_outside(tmp_path, hostile):
    chosen = params("shards", ("sky",), 6)
    data = tmp_path / "data"
    scrape_with(chosen, data / "raw")
    shard = data / "raw" / "shards" / "sky-00000.tar"
    if hostile == "truncated":
        shard.write_bytes(shard.read_bytes()[:1500])
    else:
        member = tarfile.TarInfo({"traversal": "../../escaped.png", "symlink": "sky-9999999.png", "device": "sky-9999999.png"}[hostile])
        member.type = {"traversal": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE, "device": tarfile.CHRTYPE}[hostile]
        member.linkname = "/etc/passwd" if hostile == "symlink" else ""
        _add_member(shard, member, b"not an image")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(PipelineError) as error:
        clean_dataset(data / "raw", data / "clean", chosen.clean)
    message = str(error.value)
    assert message.startswith(str(shard)) and "\n" not in message
    assert {"traversal": "not a plain file name", "symlink": "not a regular file", "device": "not a regular file", "truncated": "cut short"}[hostile] in message
    assert not (data / "clean").exists() and not any(path.name == "escaped.png" for path in tmp_path.parent.rglob("*"))
    assert [path for path in sorted(tmp_path.rglob("*")) if ".clean." not in str(path)] == before  # its lock and staging only


def test_a_manifest_naming_a_shard_outside_its_folder_or_a_member_not_there_is_one_line(tmp_path):
    data = build(tmp_path, params("shards", ("sky",), 6))
    manifest = data / "resized" / SHARDED_MANIFEST
    table = pd.read_parquet(manifest)
    table.loc[0, "shard"] = "../../clean/shards/sky-00000.tar"
    table.to_parquet(manifest, index=False)
    with pytest.raises(PipelineError, match=r"manifest.parquet: row 0: shard '../../clean/shards/sky-00000.tar' is not a shard path$"):
        split_dataset(data / "resized", tmp_path / "split", params("shards").split, 7)
    table.loc[0, "shard"], table.loc[0, "file"] = table.loc[1, "shard"], table.loc[0, "file"].replace(".png", "x.png")  # in order
    table.to_parquet(manifest, index=False)
    with pytest.raises(PipelineError, match=r"sky-00000.tar: no member 'sky-\d+x.png', which the manifest lists there"):
        split_dataset(data / "resized", tmp_path / "split", params("shards").split, 7)
