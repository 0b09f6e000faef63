"""params.yaml validation: defaults, and one clear line naming the key for each kind of mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError, load_params, parse_params
from pipeline.core.fsutil import MAX_SLUG_LENGTH, category_slug
from pipeline.dataset.sources.params import DEFAULT_CATEGORIES
from tests.stages import scrape_with


def test_the_committed_params_file_is_valid_and_uses_the_defaults():
    params = load_params()
    assert params.source.kind == "synthetic"
    assert params.source.categories == DEFAULT_CATEGORIES
    assert (params.resize.size, params.resize.mode, params.split.test_per_category) == (200, "center_crop", 10)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sede": 1}, "sede: unknown key"),
        ({"source": {"kind": "flickr"}}, "source.kind: Input should be"),
        ({"source": {"categories": []}}, "source.categories: List should have at least 1 item"),
        ({"source": {"per_category": "many"}}, "source.per_category: Input should be a valid integer"),
        ({"source": {"kind": "folder"}}, "source.folder.path: required"),
        ({"source": {"kind": "folder", "folder": {"path": "/no/such/dir"}}}, "source.folder.path: '/no/such/dir' is not a directory"),
        ({"source": {"categories": ["..", "sky"]}}, "source.categories: category '..' has no letters"),
        ({"source": {"categories": ["Sky", "sky"]}}, "map to the same folder 'sky'"),
        ({"source": {"bing": {"endpoint": "file:///etc/passwd"}}}, "source.bing.endpoint: must be an http"),
        ({"resize": {"mode": "stretch"}}, "resize.mode"),
        ({"clean": {"near_duplicate_distance": -1}}, "clean.near_duplicate_distance"),
        ({"train": {"epochs": True}}, "train.epochs: Input should be a valid integer (got True)"),
        ({"train": {"lr": "0.001"}}, "train.lr: Input should be a valid number"),
        ({"train": {"warmup": 1.5}}, "train.warmup: Input should be less than or equal to 1 (got 1.5)"),
        ({"train": {"discriminator": {"norm": "group"}}}, "train.discriminator.norm: Input should be 'batch', 'instance' or 'spectral'"),
        ({"source": {"bing": {"adult_filter": "yes"}}}, "source.bing.adult_filter: Input should be a valid boolean (got 'yes')"),
        ({"source": {"per_category": 10**9}}, "source.per_category: Input should be less than or equal to 1000000"),
        ({"schedule": {"timezone": "Mars/Base"}}, "schedule.timezone: unknown time zone; use an IANA name such as UTC or Europe/Paris (got 'Mars/Base')"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_workers_auto_means_one_per_core():
    assert parse_params({"workers": "auto"}).workers == (os.cpu_count() or 1)
    assert parse_params({"workers": 3}).workers == 3
    with pytest.raises(ParamsError, match="workers: Input should be greater than or equal to 1"):
        parse_params({"workers": 0})


def test_category_names_are_never_paths():
    params = parse_params({"source": {"categories": ["../etc", "a/b", "New York"]}})
    assert [category_slug(c) for c in params.source.categories] == ["etc", "a_b", "new_york"]


def test_unreadable_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ParamsError, match="cannot read"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"resize": {"size": 2}}))
    with pytest.raises(ParamsError, match=r"resize.size: Input should be greater than or equal to 8 \(got 2\)"):
        load_params(bad)


def test_a_params_file_that_is_not_utf8_is_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_bytes("seed: 1\n# café\n".encode("latin-1"))
    with pytest.raises(ParamsError, match=r"params.yaml: not UTF-8 text \(byte 0xe9 at offset 13\)$"):
        load_params(bad)


def test_paths_and_whole_numbers_are_accepted_as_yaml_writes_them():
    params = parse_params({"source": {"kind": "folder", "folder": {"path": "/tmp"}}, "train": {"lr": 1}})
    assert params.source.folder.path == Path("/tmp") and params.train.lr == 1.0


def test_category_names_too_long_for_a_file_name_get_short_distinct_folder_names(tmp_path):
    long_a, long_b = "sunset over the " * 20 + "sea", "sunset over the " * 20 + "hills"
    params = parse_params({"source": {"categories": [long_a, long_b], "per_category": 2}})
    slugs = [category_slug(name) for name in params.source.categories]
    assert len(set(slugs)) == 2 and all(len(slug) <= MAX_SLUG_LENGTH for slug in slugs)
    assert slugs[0].startswith("sunset_over_the_sunset") and category_slug(long_a) == slugs[0]  # stable
    scrape_with(params, tmp_path / "raw")
    assert sorted(path.name for path in (tmp_path / "raw").iterdir() if path.is_dir()) == sorted(slugs)
