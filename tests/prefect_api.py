"""Reading what flows reported to the test's Prefect server."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId


def task_run_names(flow_run_id) -> list[str]:
    """The names of a flow run's task runs, in the order they started."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [task_run.name for task_run in sorted(runs, key=lambda task_run: task_run.start_time or task_run.expected_start_time)]
