"""Typed, validated view of params.yaml: one error message that names the key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import category_slug
from pipeline.core.schema import StrictModel
from pipeline.dataset.manifests import Layout
from pipeline.dataset.sources import SOURCES

PARAMS_FILE = Path("params.yaml")

DEFAULT_CATEGORIES = [
    "landscape", "beach", "waterfall", "mountains", "nature",
    "forest", "city", "street", "buildings", "town",
]


class ParamsError(PipelineError):
    """params.yaml is missing, unreadable or invalid; the message names the key."""


MAX_PER_CATEGORY = 1_000_000


def check_time_zone(name: str) -> str:
    """`name` if it is an IANA time zone (UTC, Europe/Paris, ...), else a ValueError that says so."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone; use an IANA name such as UTC or Europe/Paris") from None
    return name


class _SourceCommon(StrictModel):
    kind: str = "synthetic"  # narrowed to the registered names below
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
            SOURCES[self.kind].check(getattr(self, self.kind))
        except ValueError as exc:
            raise ValueError(f"{self.kind}.{exc}") from None
        return self


Source = create_model(  # kind, categories, per_category, and each registered source's own params under its name
    "Source",
    __base__=_SourceCommon,
    kind=(Literal[tuple(SOURCES)], "synthetic"),  # type: ignore[valid-type]
    **{name: (source.Params, source.Params()) for name, source in SOURCES.items()},  # type: ignore[call-overload]
)


class Clean(StrictModel):
    min_side: Annotated[int, Field(ge=1)] = 64
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    min_chroma: Annotated[float, Field(ge=0.0)] = 2.0
    near_duplicate_distance: Annotated[int, Field(ge=0, le=32)] = 4
    near_duplicate_correlation: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.9


ResizeMode = Literal["center_crop", "pad", "squash"]


class Resize(StrictModel):
    size: Annotated[int, Field(ge=8, le=4096)] = 200
    mode: ResizeMode = "center_crop"


class Data(StrictModel):
    layout: Layout = "folders"  # how every data stage stores its images: a file each, or tar shards (a Parquet manifest)
    shard_size: Annotated[int, Field(ge=1, le=1_000_000)] = 2000  # images per shard of a category


class Split(StrictModel):
    test_per_category: Annotated[int, Field(ge=1)] = 10


class GeneratorParams(StrictModel):
    name: Literal["unet"] = "unet"
    base_filters: Annotated[int, Field(ge=1)] = 16
    depth: Annotated[int, Field(ge=2, le=8)] = 5
    norm: Literal["batch", "instance"] = "batch"
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    upsample: Literal["transpose", "resize"] = "transpose"


class DiscriminatorParams(StrictModel):
    name: Literal["patchgan"] = "patchgan"
    base_filters: Annotated[int, Field(ge=1)] = 16
    n_layers: Annotated[int, Field(ge=1, le=5)] = 3
    norm: Literal["batch", "instance", "spectral"] = "batch"


class Train(StrictModel):
    epochs: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 16
    crop: Annotated[int, Field(ge=0)] = 128  # random square crops of this side (0: whole images)
    device: str = "auto"  # auto = CUDA, then MPS, then CPU
    lr: Annotated[float, Field(gt=0)] = 2e-4
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.5
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    lambda_gan: Annotated[float, Field(ge=0)] = 1.0  # 0: an L1-only baseline, no discriminator
    lambda_l1: Annotated[float, Field(ge=0)] = 100.0
    warmup: Annotated[float, Field(ge=0, le=1)] = 0.25  # share of the epochs that train the generator on L1 alone, first
    decay: Annotated[float, Field(ge=0, le=1)] = 0.0  # share of the epochs, last, over which the learning rates fall to 0
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.999  # decay of the generator's weight average that is saved (0: none)
    d_max_accuracy: Annotated[float, Field(gt=0, le=1)] = 1.0  # D skips its step while its running accuracy is above
    mixed_precision: bool = True  # bf16 autocast and channels_last, on CUDA only
    compile: bool = False  # torch.compile the networks
    samples: Annotated[int, Field(ge=0)] = 4  # test images colorized after each epoch, logged with dvclive
    nproc: Annotated[int, Field(ge=1)] = 1  # torchrun processes (one per GPU): DistributedDataParallel when > 1
    loader: Literal["auto", "memory", "stream"] = "auto"  # where batches come from; auto: memory when the split fits
    checkpoint_minutes: Annotated[float, Field(ge=0)] = 10.0  # between checkpoints inside an epoch (0: at its end only)
    generator: GeneratorParams = GeneratorParams()
    discriminator: DiscriminatorParams = DiscriminatorParams()

    @property
    def warmup_epochs(self) -> int:
        return int(self.warmup * self.epochs)

    @property
    def decay_epochs(self) -> int:
        return int(self.decay * self.epochs)


class Runner(StrictModel):
    """Where scrape, clean and resize run their per-image batches."""

    kind: Literal["local", "dask"] = "local"  # local: a process pool of `workers`; dask: a Dask cluster
    address: str | None = None  # dask: a running scheduler (tcp://host:8786); none starts a local cluster

    @model_validator(mode="after")
    def _address_needs_dask(self) -> Runner:
        if self.address is not None and self.kind != "dask":
            raise ValueError("address: only used when kind is 'dask'")
        return self


class Publish(StrictModel):
    """What the pipeline flow does after a rebuild that changed something."""

    push: bool = True  # dvc push the new artifacts to the default remote
    git_commit: bool = False  # commit dvc.lock and params.yaml
    git_tag: bool = False  # tag that commit with the date (colorize-YYYY-MM-DD, -2, -3... when taken)


class Schedule(StrictModel):
    """When the served deployment of the pipeline flow runs."""

    cron: str = "0 2 * * *"  # nightly at 02:00
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return check_time_zone(value)


class Params(StrictModel):
    seed: int = 42
    workers: Annotated[int, Field(ge=1)] = Field(default_factory=lambda: os.cpu_count() or 1)
    data: Data = Data()
    source: Source = Source()
    clean: Clean = Clean()
    resize: Resize = Resize()
    split: Split = Split()
    train: Train = Train()
    runner: Runner = Runner()
    publish: Publish = Publish()
    schedule: Schedule = Schedule()

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: Any) -> Any:
        return os.cpu_count() or 1 if value == "auto" else value


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    nested = re.match(r"^([\w.]+): (.*)$", message)
    if error["type"] == "value_error" and nested:
        key, message = ".".join(filter(None, [key, nested[1]])), nested[2]
    key = key or "(top level)"
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] != "missing" and "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return f"{key}: {message}"


def describe_problems(exc: ValidationError) -> str:
    """Every problem a params model found, as `key: message`, on one line."""
    return "; ".join(_describe(error) for error in exc.errors())


def parse_params(raw: Any, origin: str = str(PARAMS_FILE)) -> Params:
    """Validate a parsed params mapping; raise ParamsError naming every bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: must be a mapping of keys to values")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(f"{origin}: {describe_problems(exc)}") from None


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_params(raw, str(path))
