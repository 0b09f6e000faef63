"""The base of every params model: strict, closed and immutable, so a typo in params.yaml is an error that names it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LocalPath = Annotated[Path, Field(strict=False)]  # a path may be written as a string in YAML


class StrictModel(BaseModel):
    """No unknown keys, no coercion (`true` is not 1, "3" is not 3), immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
