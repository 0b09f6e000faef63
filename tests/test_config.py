"""params.yaml validation: defaults, and one clear line naming the key for each kind of mistake."""

from __future__ import annotations

import os

import pytest
import yaml

from pipeline.config import DEFAULT_CATEGORIES, ParamsError, category_slug, load_params, parse_params


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
