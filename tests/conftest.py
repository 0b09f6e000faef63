"""Test settings: a private Prefect home, no telemetry, and one Prefect server for the whole session."""

from __future__ import annotations

import os
import sys
import tempfile

_HOME = tempfile.mkdtemp(prefix="prefect-home-")
os.environ.update(
    PREFECT_HOME=_HOME,
    DO_NOT_TRACK="1",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
)

import pytest  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests and tests that need the Prefect server are slow ones: `pytest -m "not slow"` leaves them out.
    The longest modules run first, so that the processes of `-n 4` end together: those with end-to-end tests (the more
    of them, the sooner), then those with slow ones; the quick modules fill in the gaps the long ones leave, instead of
    a long one starting last."""
    rank: dict[object, tuple[int, int]] = {}  # module: (0 end-to-end, 1 slow, 2 quick; minus its end-to-end tests)
    for item in items:
        if item.get_closest_marker("e2e") or "prefect_api_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
        kind, minus_e2e_tests = rank.get(item.module, (2, 0))
        if item.get_closest_marker("e2e"):
            kind, minus_e2e_tests = 0, minus_e2e_tests - 1
        elif item.get_closest_marker("slow"):
            kind = min(kind, 1)
        rank[item.module] = (kind, minus_e2e_tests)
    items.sort(key=lambda item: rank[item.module])  # stable: each module's tests keep their order


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests' tensors are tiny: one thread is faster, and avoids OpenMP spin-waits on a busy machine; unless
    OMP_NUM_THREADS asks for another count (.ci/run runs the model tests again under 2, as another machine would reduce
    sums in another order). Only when a collected test module imported torch: tests that do not need it do not pay
    for importing it."""
    torch = sys.modules.get("torch")
    if torch is None or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def prefect_api_url():
    """A real Prefect server (started once); yields its API URL, also set for flows run in this process."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield PREFECT_API_URL.value()
