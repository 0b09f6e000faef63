"""Sources are found by name: `source.kind: <kind>` selects the Source that pipeline/dataset/sources/<kind>.py
defines, with its params model (sources/params.py) under `source.<kind>`."""

from __future__ import annotations

import pytest

from pipeline.config import ParamsError, parse_params
from pipeline.dataset.scrape import define_source
from pipeline.dataset.sources.base import find_source
from pipeline.dataset.sources.params import KINDS


def test_every_kind_has_a_source_module_whose_source_takes_its_params():
    assert list(KINDS) == ["bing", "cifar10", "folder", "synthetic", "tinyimagenet", "urls"]
    for kind, params in KINDS.items():
        source = find_source(kind)
        assert source.__module__ == f"pipeline.dataset.sources.{kind}" and source.Params is params


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_source_has_its_own_params_section_with_defaults(kind):
    params = parse_params({})
    assert getattr(params.source, kind) == KINDS[kind]()
    with pytest.raises(ParamsError, match=rf"^params.yaml: source.{kind}.no_such_key: unknown key$"):
        parse_params({"source": {kind: {"no_such_key": 1}}})


def test_the_kind_selects_the_source_with_its_params():
    params = parse_params({"seed": 7, "source": {"kind": "bing", "per_category": 3, "bing": {"retries": 0}}})
    source = define_source(params.source, params.seed)
    assert type(source) is find_source("bing") and source.name == "bing"
    assert source.params.retries == 0 and source.per_category == 3 and source.seed == 7
    with pytest.raises(ParamsError, match=r"source.kind: Input should be 'bing', 'cifar10', 'folder', 'synthetic', 'tinyimagenet' or 'urls' \(got 'flickr'\)"):
        parse_params({"source": {"kind": "flickr"}})
