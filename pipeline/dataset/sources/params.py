"""The `source` section of params.yaml: the kind that selects a source, the categories, how many images of each, and
each kind's own params under its name. A leaf that every stage's params load: the sources themselves (bing.py, ...)
are imported by the scrape stage alone."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, create_model, field_validator, model_validator

from pipeline.core.fsutil import category_slug
from pipeline.core.schema import LocalPath, StrictModel

DEFAULT_CATEGORIES = [
    "landscape", "beach", "waterfall", "mountains", "nature",
    "forest", "city", "street", "buildings", "town",
]
MAX_PER_CATEGORY = 1_000_000
CIFAR10_FOLDER = "cifar-10-batches-py"  # what the official archive unpacks to
TINYIMAGENET_FOLDER = "tiny-imagenet-200"  # what the official zip unpacks to


class SourceKindParams(StrictModel):
    """A source's own params, `source.<kind>`: the module pipeline/dataset/sources/<kind>.py defines the source."""

    kind: ClassVar[str]

    def check(self) -> None:
        """Raise ValueError("<key under source.<kind>>: <why>") when this source, selected, cannot work with these params."""


class BingParams(SourceKindParams):
    kind = "bing"

    endpoint: str = "https://www.bing.com/images/async"
    timeout: Annotated[int, Field(ge=1)] = 15  # seconds for the whole transfer of one URL (redirects included)
    max_bytes: Annotated[int, Field(ge=1024)] = 20_000_000  # a larger image is refused (at the header when it says so)
    retries: Annotated[int, Field(ge=0)] = 2  # per result page, on timeouts, network errors, 429 and 5xx
    concurrent_categories: Annotated[int, Field(ge=1)] = 4
    downloads_per_category: Annotated[int, Field(ge=1)] = 8
    adult_filter: bool = True
    filter: Literal["", "photo", "line", "clipart", "gif", "animatedgif", "transparent"] = "photo"

    @field_validator("endpoint")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class Cifar10Params(SourceKindParams):
    kind = "cifar10"

    root: LocalPath | None = None  # the folder that holds cifar-10-batches-py
    download: bool = False  # fetch it into root when missing (needs internet)

    def check(self) -> None:
        if self.root is None:
            raise ValueError("root: required when kind is 'cifar10'")
        if not self.download and not (self.root / CIFAR10_FOLDER).is_dir():
            raise ValueError(f"root: {str(self.root)!r} has no {CIFAR10_FOLDER} (set cifar10.download: true to fetch it)")


class FolderParams(SourceKindParams):
    kind = "folder"

    path: LocalPath | None = None  # a folder with one sub-folder of images per category

    def check(self) -> None:
        if self.path is None:
            raise ValueError("path: required when kind is 'folder'")
        if not self.path.is_dir():
            raise ValueError(f"path: {str(self.path)!r} is not a directory")


class SyntheticParams(SourceKindParams):
    kind = "synthetic"

    defect_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    min_side: Annotated[int, Field(ge=16)] = 240
    max_side: Annotated[int, Field(ge=16)] = 480

    @model_validator(mode="after")
    def _sides_ordered(self) -> SyntheticParams:
        if self.max_side < self.min_side:
            raise ValueError("max_side must be >= min_side")
        return self


class TinyImageNetParams(SourceKindParams):
    kind = "tinyimagenet"

    root: LocalPath | None = None  # the folder that holds tiny-imagenet-200 (train/<wnid>/images/, words.txt)
    download: bool = False  # fetch and unpack the zip into root when missing (needs internet)

    def check(self) -> None:
        if self.root is None:
            raise ValueError("root: required when kind is 'tinyimagenet'")
        if not self.download and not (self.root / TINYIMAGENET_FOLDER).is_dir():
            raise ValueError(f"root: {str(self.root)!r} has no {TINYIMAGENET_FOLDER} (set tinyimagenet.download: true to fetch it)")


class UrlsParams(SourceKindParams):
    kind = "urls"

    file: LocalPath | None = None  # a .csv or .parquet file with a URL column and a category column
    url_column: str = "url"
    category_column: str = "category"
    timeout: Annotated[int, Field(ge=1)] = 15  # seconds for the whole transfer of one URL (redirects included)
    max_bytes: Annotated[int, Field(ge=1024)] = 20_000_000  # a larger image is refused (at the header when it says so)
    concurrent_downloads: Annotated[int, Field(ge=1)] = 16

    def check(self) -> None:
        if self.file is None:
            raise ValueError("file: required when kind is 'urls'")
        if not self.file.is_file():
            raise ValueError(f"file: {str(self.file)!r} is not a file")
        if self.file.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"file: {str(self.file)!r} is neither .csv nor .parquet")


KINDS: dict[str, type[SourceKindParams]] = {params.kind: params for params in sorted(SourceKindParams.__subclasses__(), key=lambda p: p.kind)}
"""Every source kind's params model, by kind."""


class _SourceCommon(StrictModel):
    kind: str = "synthetic"  # narrowed to the KINDS below
    categories: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    per_category: Annotated[int, Field(ge=1, le=MAX_PER_CATEGORY)] = 100

    @field_validator("categories")
    @classmethod
    def _safe_unique_names(cls, names: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for name in names:
            slug = category_slug(name)
            if not slug:
                raise ValueError(f"category {name!r} has no letters or digits to name a folder with")
            if slug in seen:
                raise ValueError(f"categories {seen[slug]!r} and {name!r} map to the same folder {slug!r}")
            seen[slug] = name
        return names

    @model_validator(mode="after")
    def _selected_source_works(self) -> _SourceCommon:
        try:
            self.selected.check()
        except ValueError as exc:
            raise ValueError(f"{self.kind}.{exc}") from None
        return self

    @property
    def selected(self) -> SourceKindParams:
        """The params of the source `kind` selects."""
        return getattr(self, self.kind)


SourceParams = create_model(  # kind, categories, per_category, and each kind's own params under its name
    "SourceParams",
    __base__=_SourceCommon,
    kind=(Literal[tuple(KINDS)], "synthetic"),  # type: ignore[valid-type]
    **{kind: (params, params()) for kind, params in KINDS.items()},  # type: ignore[call-overload]
)
