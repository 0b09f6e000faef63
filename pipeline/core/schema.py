"""The base of every params model: strict, closed and immutable, so a typo in params.yaml is an error that names it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

LocalPath = Annotated[Path, Field(strict=False)]  # a path may be written as a string in YAML


class StrictModel(BaseModel):
    """No unknown keys, no coercion (`true` is not 1, "3" is not 3), immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
