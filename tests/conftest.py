"""Test settings: a private Prefect home, no telemetry, and one Prefect server for the whole session."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="prefect-home-")
os.environ.update(
    PREFECT_HOME=_HOME,
    DO_NOT_TRACK="1",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_api_url():
    """A real Prefect server (started once); yields its API URL, also set for flows run in this process."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield PREFECT_API_URL.value()
