"""Runs whose process died (SIGKILL, the OOM killer, a preempted machine) are marked Crashed, not left Running: each flow
run sends Prefect heartbeats while it runs, and an automation on the server marks a run whose heartbeats stop."""

from __future__ import annotations

from datetime import timedelta

from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.settings import get_current_settings

AUTOMATION = "colorize: mark runs silent for {seconds} s crashed"  # one per window: another heartbeat frequency, another automation
MISSED_HEARTBEATS = 3  # a run is marked after this many heartbeats failed to come
FINAL_EVENTS = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}


def silent_runs_automation(heartbeat_seconds: int) -> AutomationCore:
    """Prefect's "detect zombie flows" automation: a flow run that sent a heartbeat and then, within
    MISSED_HEARTBEATS × `heartbeat_seconds`, neither another nor a final state, is marked Crashed."""
    silence = MISSED_HEARTBEATS * heartbeat_seconds
    return AutomationCore(
        name=AUTOMATION.format(seconds=silence),
        description=f"A flow run whose heartbeats stopped for {silence} s (its process died) is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silence),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=f"no heartbeat for {silence} s: its process died")],
    )


def mark_silent_runs_crashed() -> None:
    """Create the automation for this process's heartbeat frequency on the Prefect server, unless it has it (by name)."""
    heartbeat_seconds = get_current_settings().flows.heartbeat_frequency
    if heartbeat_seconds is None:  # heartbeats switched off: nothing to watch
        return
    automation = silent_runs_automation(heartbeat_seconds)
    with get_client(sync_client=True) as client:
        if not client.read_automations_by_name(automation.name):
            client.create_automation(automation)
