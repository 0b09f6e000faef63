"""The `urls` source end to end against a local HTTP server: a CSV or Parquet list of url, category in, data/raw
with its manifest and the outcome of every URL out; hostile servers bounded as Bing's are."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.config import ParamsError, parse_params
from pipeline.dataset.sources.urls import UrlsError
from pipeline.testing.fakebing import FakeBing
from tests.stages import scrape_with

SPECIAL = {2: "404", 3: "html", 4: "ftp", 5: "huge", 6: "drip_body", 7: "redirect_ftp"}


def url_list(fake: FakeBing) -> pd.DataFrame:
    """Eight URLs of `sky` (two good, then the hostile ones), three of `sea` (one listed twice), one of `other`."""
    rows = [(fake.image_url("sky", index), "sky") for index in range(8)]
    rows += [(fake.image_url("sea", 0), "sea"), (fake.image_url("sea", 0), "sea"), (fake.image_url("sea", 1), "sea")]
    rows += [(fake.image_url("other", 0), "other"), ("", "sea")]
    return pd.DataFrame(rows, columns=["url", "category"])


def params_for(file, **urls):
    return parse_params({"workers": 1, "source": {"kind": "urls", "categories": ["sky", "sea"], "per_category": 8,
                                                  "urls": {"file": str(file), "timeout": 2, "max_bytes": 200_000, **urls}}})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_listed_urls_are_downloaded_with_a_manifest_of_every_outcome(tmp_path, fmt):
    with FakeBing(special=SPECIAL, drip_seconds=0.5) as fake:
        listed = url_list(fake)
        file = tmp_path / f"urls.{fmt}"
        listed.to_csv(file, index=False) if fmt == "csv" else listed.to_parquet(file, index=False)
        result = scrape_with(params_for(file), tmp_path / "raw")
        bodies = {fake.image_url(query, index): fake.body(query, index) for query, index in [("sky", 0), ("sky", 1), ("sea", 0), ("sea", 1)]}
        huge, dripping, other = fake.image_url("sky", 5), fake.image_url("sky", 6), fake.image_url("other", 0)
    assert result.counts == {
        "sky": {"saved": 2, "http_status": 1, "not_an_image": 1, "not_http": 1, "too_large": 1, "timeout": 1, "redirect_refused": 1},
        "sea": {"saved": 2},
    }
    manifest = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert manifest["source_url"].tolist() == list(bodies) and set(manifest["source"]) == {"urls"}
    for row in manifest.itertuples():
        assert (tmp_path / "raw" / row.file).read_bytes() == bodies[row.source_url]
    attempts = pd.read_csv(tmp_path / "raw" / "attempts.csv", keep_default_na=False)
    assert attempts.set_index("source_url").loc[huge, "detail"] == "Content-Length 2147483648 > source.urls.max_bytes=200000"
    assert attempts.set_index("source_url").loc[dripping, "detail"] == "transfer took longer than source.urls.timeout=2 s"
    assert other not in set(attempts["source_url"])


def test_per_category_takes_the_first_urls_a_category_lists(tmp_path):
    with FakeBing() as fake:
        file = tmp_path / "urls.csv"
        pd.DataFrame([(fake.image_url("sky", index), "sky") for index in range(5)], columns=["url", "category"]).to_csv(file, index=False)
        params = parse_params({"source": {"kind": "urls", "categories": ["sky"], "per_category": 3, "urls": {"file": str(file)}}})
        scrape_with(params, tmp_path / "raw")
        assert pd.read_csv(tmp_path / "raw" / "manifest.csv")["source_url"].tolist() == [fake.image_url("sky", i) for i in range(3)]
        assert len(fake.image_requests()) == 3


def test_a_list_without_the_named_columns_is_one_line_naming_the_file(tmp_path):
    file = tmp_path / "urls.csv"
    file.write_text("link,label\nhttp://127.0.0.1:1/a.jpg,sky\n")
    with pytest.raises(UrlsError) as info:
        scrape_with(params_for(file), tmp_path / "raw")
    assert str(info.value) == f"{file}: no column 'url', 'category' (source.urls.url_column / category_column)"
    file = tmp_path / "urls.parquet"
    file.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(UrlsError, match=rf"^{file}: cannot read it as parquet \(.+\)$"):
        scrape_with(params_for(file), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ({}, "source.urls.file: required when kind is 'urls'"),
        ({"file": "/no/such.csv"}, "source.urls.file: '/no/such.csv' is not a file"),
        ({"file": "params.yaml"}, "source.urls.file: 'params.yaml' is neither .csv nor .parquet"),
        ({"file": "x.csv", "concurrent_downloads": 0}, "source.urls.concurrent_downloads: Input should be greater than or equal to 1"),
    ],
)
def test_urls_params_are_checked_when_the_source_is_chosen(urls, message):
    with pytest.raises(ParamsError, match=rf"^params.yaml: {message}"):
        parse_params({"source": {"kind": "urls", "urls": urls}})
