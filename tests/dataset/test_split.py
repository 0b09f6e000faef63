"""The split stage: counts per category, determinism for a seed, x/y pairs, and a clear error when too few."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.color import rgb2lab

from pipeline.dataset.manifests import MANIFEST, ResizedFile, write_table
from pipeline.dataset.params import SplitParams
from pipeline.dataset.split import SplitError, assign_splits, split_dataset
from tests.images import colorful


def resized_folder(tmp_path, counts: dict[str, int]):
    root = tmp_path / "resized"
    rows = []
    for category, count in counts.items():
        (root / category).mkdir(parents=True)
        for i in range(count):
            colorful(32, 32, seed=i).save(root / category / f"{i:03d}.png")
            rows.append({"file": f"{category}/{i:03d}.png", "category": category})
    write_table(root / MANIFEST, ResizedFile, rows)
    return root


def table(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"file": f"{c}/{i:03d}.png", "category": c} for c, n in counts.items() for i in range(n)]
    )


def test_each_category_gets_exactly_test_per_category_test_images():
    assigned = assign_splits(table({"a": 30, "b": 12}), 10, seed=1)
    counts = assigned.groupby(["category", "split"]).size()
    assert counts.to_dict() == {("a", "test"): 10, ("a", "train"): 20, ("b", "test"): 10, ("b", "train"): 2}


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    first = assign_splits(table({"a": 40}), 10, seed=1)
    assert first.equals(assign_splits(table({"a": 40}), 10, seed=1))
    assert not first.equals(assign_splits(table({"a": 40}), 10, seed=2))


def test_adding_a_category_does_not_reshuffle_the_others():
    alone = assign_splits(table({"a": 40}), 10, seed=3)
    together = assign_splits(table({"a": 40, "b": 20}), 10, seed=3)
    assert alone.equals(together[together["category"] == "a"].reset_index(drop=True))


def test_an_added_image_moves_at_most_one_other_between_train_and_test():
    for seed in range(20):
        before = assign_splits(table({"a": 40}), 10, seed).set_index("file")["split"]
        after = assign_splits(table({"a": 41}), 10, seed).set_index("file")["split"]
        moved = int((before != after[before.index]).sum())
        assert (after == "test").sum() == 10 and moved == (after["a/040.png"] == "test")


def test_a_category_too_small_to_split_is_a_clear_error():
    with pytest.raises(SplitError, match="'b' has 10 images.*test_per_category=10"):
        assign_splits(table({"a": 40, "b": 10}), 10, seed=0)


def test_split_dataset_writes_gray_inputs_and_color_targets_with_the_same_names(tmp_path):
    result = split_dataset(resized_folder(tmp_path, {"sky": 6, "sea": 5}), tmp_path / "split", SplitParams(test_per_category=2), seed=0)
    root = tmp_path / "split"
    manifest = pd.read_csv(root / "manifest.csv")
    assert result.counts == {"sky": {"test": 2, "train": 4}, "sea": {"test": 2, "train": 3}} and result.total("train") == 7
    for split in ("train", "test"):
        x_names = sorted(p.name for p in (root / f"{split}_x").iterdir())
        y_names = sorted(p.name for p in (root / f"{split}_y").iterdir())
        assert x_names == y_names == sorted(manifest.loc[manifest["split"] == split, "file"])
        for name in x_names:
            x, y = Image.open(root / f"{split}_x" / name), Image.open(root / f"{split}_y" / name)
            assert (x.mode, y.mode) == ("L", "RGB")
            lightness_x = rgb2lab(np.asarray(x.convert("RGB")))[..., 0]
            assert np.abs(lightness_x - rgb2lab(np.asarray(y))[..., 0]).max() < 0.5  # same CIELAB L, not Rec. 601 luma
    sheet = np.asarray(Image.open(root / "preview.png"), dtype=int)
    assert sheet.shape == (2 * 99 + 3, 4 * 99 + 3, 3)  # a row per category; 2 test pairs of 96-pixel cells
    gray_cell, color_cell = sheet[10:40, 10:40], sheet[10:40, 109:139]
    assert (gray_cell.max(axis=2) == gray_cell.min(axis=2)).all()
    assert (color_cell.max(axis=2) - color_cell.min(axis=2)).mean() > 10
    assert set(manifest.columns) >= {"file", "category", "split"}
