"""The `urls` source: download the images a CSV or Parquet file lists as `url, category` rows (img2dataset-style).

Each category takes the first per_category distinct URLs the file lists for it, in file order; those that fail
are recorded with why in attempts.csv, like Bing's (no further URL is tried in their place). The file is read in
chunks of CHUNK_ROWS rows, once per category, keeping only that category's URLs to download, so a file of any
length costs memory in proportion to per_category. The downloads follow the same rules as Bing's (`web.Downloader`): every server is
untrusted, `timeout` bounds the whole transfer of one URL and `max_bytes` its size, redirects go to http(s) only,
and only complete bodies that are images are kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.core.parallel import batched
from pipeline.dataset.manifests import Attempt
from pipeline.dataset.sources.base import Journal, RawOutput, Scraped, Source, Unit
from pipeline.dataset.sources.params import UrlsParams
from pipeline.dataset.web import Downloader, FetchError, file_name, request_url

log = logging.getLogger(__name__)

CHUNK_ROWS = 100_000
URLS_PER_UNIT = 32  # URLs one task downloads, one after another
HEADERS = {"User-Agent": "Mozilla/5.0 (compatible; colorization-dataset-builder)"}


class UrlsError(PipelineError):
    """The URL list cannot be read: not CSV or Parquet, or without the columns source.urls names."""


class UrlsSource(Source[UrlsParams]):
    """The listed URLs of each category, in units of URLS_PER_UNIT, `concurrent_downloads` units at a time."""

    Params = UrlsParams

    @property
    def network_threads(self) -> int:
        return self.params.concurrent_downloads

    def plan(self, category: str, batch_size: int) -> Iterator[Sequence[str]]:
        urls = listed_urls(self.params, category, self.per_category)
        if len(urls) < self.per_category:
            log.warning("urls %r: the file lists %d URLs (source.per_category=%d)", category, len(urls), self.per_category)
        yield from batched(urls, URLS_PER_UNIT)

    def fetch(self, unit: Unit, output: RawOutput, stop: threading.Event | None) -> Scraped:
        """Download the unit's URLs one after another into files, skipping those its journal holds."""
        journal = Journal(output.root, unit.name)
        done = {row.source_url: row for row in journal.done()}
        with Downloader(f"urls {unit.name!r}", "source.urls", self.params.timeout, self.params.max_bytes,
                        stop or threading.Event(), HEADERS) as web:
            for url in unit.items:
                if url in done:
                    continue
                try:
                    data = web.image(request_url(url))
                except FetchError as exc:
                    log.warning("urls %r: skipped %s: %s: %s", unit.category, url, exc.reason, exc)
                    journal.skip(Attempt(unit.category, url, exc.reason, str(exc)))
                    continue
                done[url] = output.save(unit.category, file_name(url, data), data, self.name, url)
                journal.add(done[url])
        saved = [done[url] for url in unit.items if url in done]
        failed = {attempt.source_url: attempt for attempt in journal.skipped() if attempt.source_url not in done}
        return Scraped(saved, list(failed.values()))

    def describe(self) -> str:
        return f"the URLs listed in {self.params.file}"


def listed_urls(params: UrlsParams, category: str, count: int) -> list[str]:
    """The first `count` distinct URLs the file lists for `category`, in file order (reading stops there)."""
    assert params.file is not None  # guaranteed by `check`
    urls: dict[str, None] = {}
    for chunk in _chunks(params.file, [params.url_column, params.category_column]):
        for url in chunk.loc[chunk[params.category_column] == category, params.url_column].str.strip():
            if url and len(urls) < count:
                urls[url] = None
        if len(urls) >= count:
            break
    return list(urls)


def _chunks(path: Path, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The file's two columns, CHUNK_ROWS rows at a time; UrlsError names the file and what is wrong."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.ParquetFile(path)
            _check_columns(path, table.schema_arrow.names, columns)
            for batch in table.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
                yield batch.to_pandas().fillna("").astype(str)
            return
        with pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS) as reader:
            for chunk in reader:
                _check_columns(path, list(chunk.columns), columns)
                yield chunk[columns]
    except UrlsError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UrlsError(f"{path}: cannot read it as {path.suffix.lower().lstrip('.')} ({reason})") from None


def _check_columns(path: Path, present: list[str], columns: list[str]) -> None:
    missing = [column for column in columns if column not in present]
    if missing:
        raise UrlsError(f"{path}: no column {', '.join(map(repr, missing))} (source.urls.url_column / category_column)")
