"""The tinyimagenet source on a tiny tiny-imagenet-200 folder that the test writes in the zip's own layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import ParamsError, parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.shards import read_shard
from pipeline.dataset.sources.tinyimagenet import class_ids, class_names
from tests.images import colorful, encode
from tests.stages import scrape_with

CLASSES = {"n02124075": "Egyptian cat", "n07749582": "lemon, citrus"}


def write_tiny(root: Path, per_class: int = 3) -> Path:
    """tiny-imagenet-200 with `per_class` JPEGs per class under train/<wnid>/images, wnids.txt and words.txt (which, as
    the real one, names more ids than the dataset has)."""
    folder = root / "tiny-imagenet-200"
    for number, wnid in enumerate(CLASSES):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(per_class):
            (images / f"{wnid}_{i}.JPEG").write_bytes(encode(colorful(64, 64, seed=10 * number + i), "JPEG"))
    (folder / "wnids.txt").write_text("".join(f"{wnid}\n" for wnid in CLASSES))
    words = {**CLASSES, "n00001740": "entity"}
    (folder / "words.txt").write_text("".join(f"{wnid}\t{names}\n" for wnid, names in words.items()))
    class_ids.cache_clear()
    return root


def params(root: Path, layout: str = "folders", **source):
    return parse_params({"data": {"layout": layout}, "source": {
        "kind": "tinyimagenet", "categories": ["Egyptian cat", "n07749582"], "per_category": 2, "tinyimagenet": {"root": str(root)}, **source}})


@pytest.mark.parametrize("layout", ["folders", "shards"])
def test_the_first_photos_of_each_class_by_name_or_wnid_are_copied_untouched(tmp_path, layout):
    root = write_tiny(tmp_path / "data")
    raw = tmp_path / "raw"
    scrape_with(params(root, layout), raw)
    manifest = pd.read_csv(raw / "manifest.csv") if layout == "folders" else pd.read_parquet(raw / "manifest.parquet")
    assert manifest.groupby("category").size().to_dict() == {"Egyptian cat": 2, "n07749582": 2}
    assert set(manifest["source"]) == {"tinyimagenet"}
    for row in manifest.itertuples():
        original = Path(row.source_url.removeprefix("file://"))
        assert original.parent.parent.name in CLASSES and original.name.endswith(("_0.JPEG", "_1.JPEG"))
        assert row.sha256 == hashlib.sha256(original.read_bytes()).hexdigest()
    if layout == "folders":
        assert all((raw / row.file).read_bytes() == Path(row.source_url.removeprefix("file://")).read_bytes() for row in manifest.itertuples())
    else:
        assert sum(len(list(read_shard(raw / shard))) for shard in manifest["shard"].unique()) == 4


def test_class_names_are_the_first_names_in_words_txt_in_wnids_order(tmp_path):
    assert class_names(write_tiny(tmp_path)) == ["Egyptian cat", "lemon"]


def test_a_name_that_is_not_a_class_is_a_clear_error(tmp_path):
    root = write_tiny(tmp_path)
    with pytest.raises(PipelineError, match="'entity' is not a Tiny ImageNet class"):
        scrape_with(params(root, categories=["entity"]), tmp_path / "raw")


def test_a_missing_dataset_is_a_params_error_unless_download_is_allowed(tmp_path):
    with pytest.raises(ParamsError, match="source.tinyimagenet.root: .* has no tiny-imagenet-200"):
        params(tmp_path)
    with pytest.raises(ParamsError, match="source.tinyimagenet.root: required"):
        parse_params({"source": {"kind": "tinyimagenet"}})
    assert params(tmp_path, tinyimagenet={"root": str(tmp_path), "download": True}).source.tinyimagenet.download


@pytest.mark.parametrize(("content", "reason"), [
    (b"n02124075 Egyptian cat\n", "line 1 is not '<wnid><tab><names>'"),
    (b"\xff\xfe\x00binary", r"not Tiny ImageNet's \(not UTF-8 text\)"),
])
def test_a_words_file_that_is_not_tiny_imagenets_is_one_line_naming_it(tmp_path, content, reason):
    root = write_tiny(tmp_path)
    (root / "tiny-imagenet-200" / "words.txt").write_bytes(content)
    with pytest.raises(PipelineError, match=f"words.txt: {reason}$"):
        scrape_with(params(root), tmp_path / "raw")
