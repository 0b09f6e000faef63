"""The whole pipeline as one Prefect flow: `dvc repro` stage by stage, then push to the DVC remote (and commit in git).

python -m flows.pipeline          rebuild once, now
python -m flows.pipeline serve    serve it as a deployment on a cron schedule (see the Prefect UI)
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

from prefect import Flow, flow, get_client, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy, FlowRun
from prefect.client.schemas.schedules import CronSchedule
from prefect.context import FlowRunContext, TaskRunContext
from prefect.deployments.runner import EntrypointType
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from prefect.states import Completed, Crashed, Failed, Pending, State
from pydantic import ValidationError

from flows.cli import PIPELINE_TAG, STAGE_RUN, run_command
from flows.heartbeats import mark_silent_runs_crashed
from pipeline.config import PARAMS_FILE, Params, check_time_zone, load_params
from pipeline.core.errors import PipelineError
from pipeline.dag import stage_names
from pipeline.model.evaluate import METRICS_FILE
from pipeline.paths import EVAL
from pipeline.versioning.publish import MODEL_ARTIFACT, commit_version, push, register_model, require_git
from pipeline.versioning.rebuild import changed_stages, lock_entries, repro_stage, stage_order, workspace_lock

ROOT = Path(".")
DEPLOYMENT = "nightly"
STAGE_RETRIES = {"scrape": 2}  # the network: an outage that outlasts the source's retries of one request; it resumes


def stage_log(level: int, line: str) -> None:
    get_run_logger().log(level, "%s", line)


@task(cache_policy=NO_CACHE, retry_delay_seconds=30)
def stage(name: str, tag: str) -> State:
    """One DVC stage: DVC runs it if it is stale, as a flow run made here under this task (tagged `tag`), and skips it
    otherwise; the task's state message says which, and its data is the stage's flow run (None when skipped, and for
    the code stage, which runs no flow)."""
    before = lock_entries(ROOT).get(name)
    run = create_stage_run(name, tag) if name in stage_names() else None
    try:
        repro_stage(ROOT, name, stage_log, env={PIPELINE_TAG: tag} | ({STAGE_RUN: str(run.id)} if run else {}))
    finally:
        if run:
            end_stage_run(run)
    if lock_entries(ROOT).get(name) == before:
        return Completed(message="up to date: DVC skipped it" if run else "up to date: the code is as dvc.lock records it")
    if run is None:
        return Completed(message="rebuilt: the code differs from dvc.lock's")
    link_back(run)
    return Completed(message=f"rebuilt: flow run {run.name}", data=run)


def end_stage_run(run: FlowRun) -> None:
    """Remove the stage's flow run when its flow never began (DVC skipped the stage, or it failed first); mark it
    Crashed when its process died without a word (SIGKILL, the OOM killer)."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run.id)
        if run.state is None or run.state.is_pending():
            client.delete_flow_run(run.id)
        elif not run.state.is_final():
            client.set_flow_run_state(run.id, Crashed(message="the stage's process died while it ran"), force=True)


def _stage_flow() -> None:
    """Stands for a stage's flow when its run is made here: the stage's process runs the flow itself."""


def create_stage_run(name: str, tag: str) -> FlowRun:
    """A flow run of the stage's flow, a child of the running task: the stage's process runs its flow as this run."""
    context = TaskRunContext.get()
    assert context is not None  # the stage task
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30  # the server stores task runs from events, a moment after they start
        while True:
            try:
                client.read_task_run(context.task_run.id)
                break
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return client.create_flow_run(flow=Flow(_stage_flow, name=name), parameters={}, state=Pending(),
                                      parent_task_run_id=context.task_run.id, tags=[tag])


def link_back(run: FlowRun) -> None:
    """An artifact on the stage's flow run that links back to the pipeline run (without a key: no history to keep)."""
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None  # a task of the pipeline flow
    back = f"Run by the pipeline run [{context.flow_run.name}]({run_link(context.flow_run.id)})."
    with get_client(sync_client=True) as client:
        client.create_artifact(ArtifactCreate(type="markdown", data=back, flow_run_id=run.id, description="The pipeline run that ran this stage"))


def run_link(flow_run_id: UUID) -> str:
    """The flow run's page in the Prefect UI (a path: the UI resolves it against its own address)."""
    return f"/runs/flow-run/{flow_run_id}"


@task(cache_policy=NO_CACHE, task_run_name="dvc push")
def push_artifacts() -> int:
    pushed = push(ROOT)
    get_run_logger().info("dvc push: %s", f"{pushed} files pushed" if pushed else "the remote already has everything")
    return pushed


@task(cache_policy=NO_CACHE, task_run_name="git commit")
def commit_lock(changed: list[str], tag: bool) -> tuple[str, str | None] | None:
    """Commit (and tag) the version files whenever they differ from the last commit: this run's rebuild, or one an
    earlier run left uncommitted (its push or commit failed)."""
    today = datetime.now(timezone.utc).date()
    what = f"rebuilt {', '.join(changed)}" if changed else "the version an earlier run rebuilt but did not commit"
    version = commit_version(ROOT, f"pipeline run {today}: {what}", today if tag else None)
    get_run_logger().info("git: %s", f"commit {version[0]}" + (f", tag {version[1]}" if version[1] else "") if version else "nothing to commit")
    if version and tag and (model := register_model(ROOT, f"pipeline run {today}: the colorizer of commit {version[0]}")):
        get_run_logger().info("model registry: %s (dvc artifacts get . %s --rev %s)", model, MODEL_ARTIFACT, model.split("@")[1])
    return version


def run_report(results: dict[str, State], pushed: int | None, version: tuple[str, str | None] | None, headline: dict,
               evaluation: UUID | None = None) -> str:
    """The run's summary, as markdown for the Prefect UI: each stage's result (with a link to its flow run), what was
    published, and the evaluation's headline numbers, with a link that opens the `evaluation` artifact (its id)."""
    lines = ["# Pipeline run", "", "| stage | result | flow run |", "| --- | --- | --- |"]
    for name, state in results.items():
        run = state.result(raise_on_failure=False) if state.data is not None else None  # the stage's flow run, if rebuilt
        run = run if isinstance(run, FlowRun) else None
        lines.append(f"| {name} | rebuilt | [{run.name}]({run_link(run.id)}) |" if run else f"| {name} | {state.message} |  |")
    lines += ["", f"- **dvc push**: {'off (publish.push)' if pushed is None else f'{pushed} files'}"]
    if version:
        lines += [f"- **git**: commit `{version[0]}`" + (f", tag `{version[1]}`" if version[1] else "")]
    if headline:
        lines += ["", f"## Evaluation ({EVAL / METRICS_FILE})", "", *_headline_table(headline)]
        for name, numbers in headline.get("collections", {}).items():
            lines += ["", f"Collection {name}:", "", *_headline_table(numbers)]
        if evaluation:
            lines += ["", f"Every score, per category, on real photos and on each collection, with the comparison grids: [the "
                      f"latest evaluation](/artifacts/artifact/{evaluation}), the `evaluation` artifact of the evaluate stage's flow run."]
    return "\n".join(lines)


def latest_evaluation() -> UUID | None:
    """The id of the latest `evaluation` artifact (the evaluate stage's), for a link that opens it."""
    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=["evaluation"])), limit=1)
    return found[0].latest_id if found else None


def _headline_table(headline: dict) -> list[str]:
    """Markdown rows: each headline number of the model beside the gray and tint baselines' (`gray_<name>`, `tint_<name>`)."""
    lines = ["| metric | model | gray baseline | tint baseline |", "| --- | --- | --- | --- |"]
    for name, value in headline.items():
        if name.startswith(("gray_", "tint_")) or not isinstance(value, int | float):
            continue
        baselines = (f"{headline[key]:.4g}" if (key := f"{prefix}{name}") in headline else "" for prefix in ("gray_", "tint_"))
        lines.append(f"| {name} | {value:.4g} | " + " | ".join(baselines) + " |")
    return lines


def read_headline() -> dict:
    path = ROOT / EVAL / METRICS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@flow(name="colorize-pipeline")
def rebuild_and_publish() -> State:
    """Rebuild what is stale (DVC decides), push the new artifacts, and commit dvc.lock when publish.git_commit asks."""
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    tag = f"pipeline-run:{context.flow_run.id}"
    add_tag(context.flow_run.id, tag)  # the run carries the tag it gives its stages' runs
    mark_silent_runs_crashed()
    try:
        params = load_params(ROOT / PARAMS_FILE)
        if params.publish.git_commit:
            require_git(ROOT)  # before rebuilding, not after
        with workspace_lock(ROOT, "flows.pipeline"):
            return rebuild(params, tag, context.flow_run.id)
    except PipelineError as exc:
        get_run_logger().error("error: %s", exc, extra={"known_error": True})
        return Failed(message=str(exc))


def rebuild(params: Params, tag: str, flow_run_id: UUID) -> State:
    """The pipeline run's work, holding the workspace: each stage, then publishing. A failed task ends it in Failed,
    with the task's error (which the task logged) as its message."""
    before = lock_entries(ROOT)
    results: dict[str, State] = {}
    for name in stage_order(ROOT):
        results[name] = stage.with_options(name=name, task_run_name=name, retries=STAGE_RETRIES.get(name, 0))(name, tag, return_state=True)
        if results[name].is_failed():
            return failed(results[name])
    changed = changed_stages(before, lock_entries(ROOT))
    pushed = version = None
    if params.publish.push:  # whatever the remote lacks, rebuilt now or not
        if (pushing := push_artifacts(return_state=True)).is_failed():
            return failed(pushing)
        pushed = pushing.result()
    if params.publish.git_commit:
        if (committing := commit_lock(changed, params.publish.git_tag, return_state=True)).is_failed():
            return failed(committing)
        version = committing.result()
    create_markdown_artifact(key="pipeline-run", markdown=run_report(results, pushed, version, read_headline(), latest_evaluation()),
                             description="What this run rebuilt and published, with links to the stages' flow runs")
    add_tag(flow_run_id, "rebuilt" if changed else "up-to-date", first=True)
    outcome = {"changed": changed, "pushed": pushed, "commit": version and version[0], "tag": version and version[1]}
    return Completed(message=outcome_line(changed, pushed, version), data=outcome)


def failed(task_state: State) -> State:
    """A Failed state for the pipeline run, whose message is the failed task's error."""
    error = task_state.result(raise_on_failure=False) if task_state.data is not None else None
    return Failed(message=str(error) if isinstance(error, BaseException) else task_state.message)


def add_tag(flow_run_id: UUID, tag: str, first: bool = False) -> None:
    """Add a tag to a flow run, after its others or `first` (the runs list shows them in order, and filters by them)."""
    with get_client(sync_client=True) as client:
        tags = [other for other in client.read_flow_run(flow_run_id).tags if other != tag]
        client.update_flow_run(flow_run_id, tags=[tag, *tags] if first else [*tags, tag])


def outcome_line(changed: list[str], pushed: int | None, version: tuple[str, str | None] | None) -> str:
    """What a pipeline run did, in the message of its final state (the runs list shows it beside the state's name)."""
    parts = [f"rebuilt {', '.join(changed)}" if changed else "nothing changed: every stage was up to date"]
    if pushed:
        parts.append(f"pushed {pushed} files")
    if version:
        parts.append(f"commit {version[0]}" + (f", tag {version[1]}" if version[1] else ""))
    return "; ".join(parts)


def schedule(params: Params, cron: str | None, timezone_name: str | None) -> Cron:
    """The deployment's schedule: --cron and --timezone, else schedule.cron and schedule.timezone; a bad one is a
    PipelineError naming the option or key."""
    cron_key, cron = ("--cron", cron) if cron else ("schedule.cron", params.schedule.cron)
    zone_key, zone = ("--timezone", timezone_name) if timezone_name else ("schedule.timezone", params.schedule.timezone)
    try:
        check_time_zone(zone)
    except ValueError as exc:
        raise PipelineError(f"{zone_key}: {exc} (got {zone!r})") from None
    try:
        CronSchedule(cron=cron, timezone=zone)  # Prefect's own validation, which Cron defers to the server
    except ValidationError as exc:
        raise PipelineError(f"{cron_key}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return Cron(cron, timezone=zone)


def serve(params: Params, cron: str | None, timezone_name: str | None) -> None:
    """Serve the flow as the deployment colorize-pipeline/nightly; one run at a time, later ones wait in line."""
    schedules = [schedule(params, cron, timezone_name)]  # a bad one fails here, before the server is asked anything
    mark_silent_runs_crashed()
    rebuild_and_publish.serve(
        name=DEPLOYMENT,
        schedules=schedules,
        global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
        description=rebuild_and_publish.description,
        tags=["colorize"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file to validate (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", metavar="{serve}")
    serving = commands.add_parser("serve", help="serve the deployment on a cron schedule (Ctrl-C stops it)")
    serving.add_argument("--cron", help="cron schedule (default: schedule.cron in params.yaml)")
    serving.add_argument("--timezone", help="the schedule's time zone (default: schedule.timezone in params.yaml)")
    args = parser.parse_args()

    def run_pipeline() -> None:
        params = load_params(args.params)
        if args.command == "serve":
            serve(params, args.cron, args.timezone)
        elif (state := rebuild_and_publish(return_state=True)).is_failed():
            raise PipelineError(state.message or "a stage failed")

    run_command("pipeline", run_pipeline, when_interrupted="stages that finished are recorded in dvc.lock; run it again to finish")


if __name__ == "__main__":
    # Run this module under its own name, so the deployment's entrypoint is flows.pipeline.rebuild_and_publish.
    from flows import pipeline

    pipeline.main()
