"""Sources are found by name: every module of pipeline/dataset/sources that defines a Source is selectable by
`source.kind`, with its params model under `source.<name>`."""

from __future__ import annotations

import pytest

from pipeline.config import ParamsError, parse_params
from pipeline.dataset.scrape import define_source
from pipeline.dataset.sources import SOURCES


def test_every_source_module_is_registered_under_its_name():
    assert {"synthetic", "bing", "folder", "cifar10"} <= set(SOURCES)
    assert all(source.__module__ == f"pipeline.dataset.sources.{name}" for name, source in SOURCES.items())


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_source_has_its_own_params_section_with_defaults(name):
    params = parse_params({})
    assert getattr(params.source, name) == SOURCES[name].Params()
    with pytest.raises(ParamsError, match=rf"^params.yaml: source.{name}.no_such_key: unknown key$"):
        parse_params({"source": {name: {"no_such_key": 1}}})


def test_the_kind_selects_the_source_with_its_params():
    params = parse_params({"seed": 7, "source": {"kind": "bing", "per_category": 3, "bing": {"retries": 0}}})
    source = define_source(params)
    assert type(source) is SOURCES["bing"] and source.params.retries == 0 and source.per_category == 3 and source.seed == 7
    with pytest.raises(ParamsError, match=r"source.kind: Input should be 'bing', "):
        parse_params({"source": {"kind": "flickr"}})
