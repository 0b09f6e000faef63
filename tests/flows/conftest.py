"""The flows' end-to-end tests: a workspace per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.testing.workspace import make_workspace


@pytest.fixture
def project(tmp_path: Path, prefect_api_url: str) -> tuple[Path, dict[str, str]]:
    """A fresh copy of the repository (as a clone would have it), set up with tiny params."""
    return make_workspace(tmp_path, prefect_api_url)
