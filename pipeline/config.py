"""Typed, validated view of params.yaml: one error message that names the key. Each part's params model lives beside
its code, as a leaf (pipeline/dataset/params.py, sources/params.py, model/params.py); the whole is assembled here,
with the params of where and when the pipeline runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.core.errors import PipelineError
from pipeline.core.schema import StrictModel, describe_problems
from pipeline.dataset.params import DatasetParams
from pipeline.model.params import EvaluateParams, TrainParams

PARAMS_FILE = Path("params.yaml")

class ParamsError(PipelineError):
    """params.yaml is missing, unreadable or invalid; the message names the key."""


def check_time_zone(name: str) -> str:
    """`name` if it is an IANA time zone (UTC, Europe/Paris, ...), else a ValueError that says so."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone; use an IANA name such as UTC or Europe/Paris") from None
    return name


class RunnerParams(StrictModel):
    """Where scrape, clean and resize run their per-image batches."""

    kind: Literal["local", "dask"] = "local"  # local: a process pool of `workers`; dask: a Dask cluster
    address: str | None = None  # dask: a running scheduler (tcp://host:8786); none starts a local cluster

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RunnerParams:
        if self.address is not None and self.kind != "dask":
            raise ValueError("address: only used when kind is 'dask'")
        return self


class PublishParams(StrictModel):
    """What the pipeline flow does after a rebuild that changed something."""

    push: bool = True  # dvc push the new artifacts to the default remote
    git_commit: bool = False  # commit dvc.lock and params.yaml
    git_tag: bool = False  # tag that commit with the date (colorize-YYYY-MM-DD, -2, -3... when taken)


class ScheduleParams(StrictModel):
    """When the served deployment of the pipeline flow runs."""

    cron: str = "0 2 * * *"  # nightly at 02:00
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return check_time_zone(value)


class Params(DatasetParams):
    """The whole of params.yaml: the data stages' sections (DatasetParams), the model's, and where and when it runs."""

    seed: int = 42
    workers: Annotated[int, Field(ge=1)] = Field(default_factory=lambda: os.cpu_count() or 1)
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    runner: RunnerParams = RunnerParams()
    publish: PublishParams = PublishParams()
    schedule: ScheduleParams = ScheduleParams()

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_workers(cls, value: Any) -> Any:
        return os.cpu_count() or 1 if value == "auto" else value


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
