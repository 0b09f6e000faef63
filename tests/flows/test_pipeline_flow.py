"""The pipeline flow served as a scheduled deployment on a real Prefect server, publishing to the default DVC remote."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterTags,
)
from prefect.deployments import run_deployment

from pipeline.dag import CODE_STAGE, stage_names
from pipeline.testing.workspace import edit_params, files, make_workspace, run
from pipeline.versioning.rebuild import workspace_lock
from tests.prefect_api import task_run_names

pytestmark = pytest.mark.e2e
DEPLOYMENT = "colorize-pipeline/nightly"
STAGES = (CODE_STAGE, *stage_names())  # the pipeline run's stage tasks, in their order


class Served:
    """A workspace whose pipeline flow is being served, and the files its runs publish."""

    def __init__(self, repo: Path, env: dict[str, str]):
        self.repo, self.env = repo, env
        self.remote = Path(env["HOME"]) / ".cache/colorize-pipeline/dvc-remote"

    def trigger(self):
        """Run the deployment through the API, as the UI's Run button does; returns the finished flow run."""
        return run_deployment(DEPLOYMENT, timeout=600)

    def remote_files(self) -> dict[str, int]:
        return {str(path.relative_to(self.remote)): path.stat().st_mtime_ns for path in self.remote.rglob("*") if path.is_file()}

    def git(self, *args: str) -> str:
        return run(self.repo, self.env, "git", *args).stdout


def stage_results(flow_run_id) -> dict[str, str]:
    """What each stage task of a pipeline run says it did (its Completed state's message up to a colon): rebuilt, or up
    to date (DVC skipped it)."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert all(run.state.name == "Completed" for run in runs if run.name in STAGES), [run.state for run in runs]
    return {run.name: run.state.message.split(":")[0] for run in runs if run.name in STAGES}


def assert_completed_and_tagged(flow_run, outcome: str) -> None:
    """Prefect's own Completed state (its views and filters know it), told apart in the runs list by a tag."""
    assert flow_run.state.type.value == "COMPLETED" and flow_run.state.name == "Completed", flow_run.state
    assert flow_run.tags[0] == outcome and f"pipeline-run:{flow_run.id}" in flow_run.tags, flow_run.tags


def stage_runs(pipeline_run) -> dict[str, object]:
    """The stages' flow runs of a pipeline run, by stage: found by its tag (which the pipeline run carries too), each a
    child of one of its stage tasks."""
    with get_client(sync_client=True) as client:
        tagged = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"pipeline-run:{pipeline_run.id}"])))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[pipeline_run.id])))
    assert pipeline_run.id in {run.id for run in tagged}  # the tag finds the pipeline run too
    runs = [run for run in tagged if run.id != pipeline_run.id]
    parents = {task.id: task.name for task in tasks}
    by_stage = {parents.get(run.parent_task_run_id): run for run in runs}
    assert len(by_stage) == len(runs) and None not in by_stage, "a stage run outside its pipeline run's stage tasks"
    return by_stage


def artifacts(flow_run_id) -> dict[str | None, str]:
    """A flow run's artifacts by key (None: the one without a key)."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {artifact.key: str(artifact.data) for artifact in found}


def latest_evaluation_link() -> str:
    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=["evaluation"])))
    return f"(/artifacts/artifact/{latest[0].latest_id})"


def model_versions(served: Served) -> list[str]:
    return [tag for tag in served.git("tag", "--list").split() if tag.startswith("colorizer@")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[Served]:
    """`python -m flows.pipeline serve --cron '0 3 * * *'` in a fresh workspace that commits and tags what it rebuilds."""
    repo, env = make_workspace(tmp_path_factory.mktemp("served"), prefect_api_url)
    edit_params(repo, publish={"git_commit": True, "git_tag": True})
    run(repo, env, "git", "commit", "-qam", "publish from the nightly run")
    log = open(repo.parent / "serve.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.pipeline", "serve", "--cron", "0 3 * * *"],
        cwd=repo, env={**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 60
            while not any(d.name == "nightly" for d in client.read_deployments()):
                assert server.poll() is None and time.monotonic() < deadline, (repo.parent / "serve.log").read_text()
                time.sleep(0.5)
        yield Served(repo, env)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def first_run(served: Served):
    """The first triggered run: it builds everything."""
    flow_run = served.trigger()
    return flow_run, (served.repo / "data/models/generator.pt").read_bytes()


def test_the_deployment_has_its_cron_schedule_and_runs_one_at_a_time(served):
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
    assert [schedule.schedule.cron for schedule in deployment.schedules] == ["0 3 * * *"]
    assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
    assert deployment.entrypoint == "flows.pipeline.rebuild_and_publish"


def test_a_triggered_run_rebuilds_every_stage_as_a_task_then_pushes_commits_and_tags(served, first_run):
    flow_run, _ = first_run
    assert flow_run.state.is_completed(), flow_run.state.message
    names = task_run_names(flow_run.id)
    assert names[: len(STAGES)] == list(STAGES)
    assert set(names[len(STAGES):]) == {"dvc push", "git commit"}
    results = stage_results(flow_run.id)  # the code stage records something new only when the code differs from dvc.lock's
    assert {name: results[name] for name in stage_names()} == {name: "rebuilt" for name in stage_names()} and CODE_STAGE in results
    summary = artifacts(flow_run.id)["pipeline-run"]
    assert re.search(r"\| train \| rebuilt \| \[[\w-]+\]\(/runs/flow-run/[0-9a-f-]{36}\) \|", summary) and "files" in summary
    assert "## Evaluation" in summary and re.search(r"\| real_psnr \| [\d.]+ \| [\d.]+ \|", summary)
    assert latest_evaluation_link() in summary  # opens the evaluation itself, not the list of its versions
    assert_completed_and_tagged(flow_run, "rebuilt")
    assert re.match(r"rebuilt (code, )?scrape, clean", flow_run.state.message) and "| code | " in summary
    runs = stage_runs(flow_run)  # each stage's own flow run: under its stage task, linked back, with its artifacts
    assert sorted(runs) == sorted(stage_names())
    for stage_run in runs.values():
        found = artifacts(stage_run.id)
        assert f"/runs/flow-run/{flow_run.id}" in found[None] and "pipeline-run" not in found  # the key is the summaries' alone
        assert f"/runs/flow-run/{stage_run.id}" in summary
    keys = {key for stage_run in runs.values() for key in artifacts(stage_run.id)}
    assert {"clean-summary", "training", "training-samples", "split-preview", "evaluation"} <= keys
    assert all("data:image/jpeg;base64," in artifacts(stage_run.id).get(key, "data:image/jpeg;base64,")
               for stage_run in runs.values() for key in ("training-samples", "split-preview", "evaluation"))

    today = datetime.now(timezone.utc).date()
    assert served.git("tag", "--list").split() == [f"colorize-{today}", "colorizer@v0.0.1"]  # the dated version, the model's
    assert served.git("show", "--name-only", "--format=%s", "HEAD").split("\n")[0].startswith(f"pipeline run {today}: rebuilt ")
    assert not served.git("status", "--porcelain", "--", "dvc.lock")
    assert len(served.remote_files()) > 10


def test_a_run_with_nothing_to_rebuild_pushes_and_commits_nothing(served, first_run):
    head, remote = served.git("rev-parse", "HEAD"), served.remote_files()
    flow_run = served.trigger()
    assert flow_run.state.is_completed(), flow_run.state.message
    assert served.git("rev-parse", "HEAD") == head
    assert served.remote_files() == remote
    summary = artifacts(flow_run.id)["pipeline-run"]
    assert "| rebuilt |" not in summary and "0 files" in summary and latest_evaluation_link() in summary
    assert stage_results(flow_run.id) == {name: "up to date" for name in STAGES} and stage_runs(flow_run) == {}
    assert_completed_and_tagged(flow_run, "up-to-date")


def test_two_runs_triggered_together_run_one_at_a_time_each_with_its_own_stage_runs(served, first_run):
    """Started in the same second, so a tag made of the first digits of their ids (UUIDv7: a time) would be one."""
    with open(served.repo / "flows/evaluate.py", "a", encoding="utf-8") as code:
        code.write("# an edit: the next run rebuilds evaluate\n")
    served.git("commit", "-qam", "edit evaluate")
    versions = model_versions(served)
    started = [run_deployment(DEPLOYMENT, timeout=0) for _ in range(2)]
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 300
        while True:
            runs = [client.read_flow_run(flow_run.id) for flow_run in started]
            if all(flow_run.state.is_final() for flow_run in runs):
                break
            assert time.monotonic() < deadline, [flow_run.state for flow_run in runs]
            time.sleep(1)
    assert all(flow_run.state.is_completed() for flow_run in runs), [flow_run.state.message for flow_run in runs]
    first, second = sorted(runs, key=lambda flow_run: flow_run.start_time)
    assert second.start_time >= first.end_time  # never both running
    assert list(stage_runs(first)) == ["evaluate"] and stage_runs(second) == {}
    assert_completed_and_tagged(first, "rebuilt")
    assert_completed_and_tagged(second, "up-to-date")
    assert model_versions(served) == versions  # a new evaluation of the same model: committed, but no new model version


def test_a_clone_pulls_the_published_dataset_and_model_byte_identical(served, first_run, tmp_path):
    clone = tmp_path / "clone"
    run(tmp_path, served.env, "git", "clone", "-q", str(served.repo), str(clone))
    run(clone, served.env, "dvc", "pull")
    for folder in ("data/split", "data/models"):
        assert files(clone / folder) == files(served.repo / folder), folder


def test_after_a_second_version_checking_out_the_first_tag_restores_the_first_model(served, first_run, tmp_path):
    _, first_model = first_run
    before = served.git("tag", "--list").split()  # the first run's, and any of the tests before
    edit_params(served.repo, train={"epochs": 2})
    flow_run = served.trigger()
    assert flow_run.state.is_completed(), flow_run.state.message
    second_model = (served.repo / "data/models/generator.pt").read_bytes()
    assert second_model != first_model
    new = [tag for tag in served.git("tag", "--list").split() if tag not in before]
    tags = [before[0], *(tag for tag in new if tag.startswith("colorize-"))]
    assert len(new) == 2 and re.fullmatch(rf"{tags[0]}-\d", tags[1]), new
    assert [tag for tag in new if tag.startswith("colorizer@")] == [f"colorizer@v0.0.{len([t for t in before if t.startswith('colorizer@')]) + 1}"]
    fetched = tmp_path / "v1.pt"  # the model registry: a registered version, fetched without a clone
    run(tmp_path, served.env, "dvc", "artifacts", "get", str(served.repo), "colorizer", "--rev", "v0.0.1", "-o", str(fetched))
    assert fetched.read_bytes() == first_model

    clone = tmp_path / "clone"
    run(tmp_path, served.env, "git", "clone", "-q", str(served.repo), str(clone))
    run(clone, served.env, "git", "checkout", "-q", tags[0])
    run(clone, served.env, "dvc", "pull")
    assert (clone / "data/models/generator.pt").read_bytes() == first_model
    run(clone, served.env, "git", "checkout", "-q", tags[1])
    run(clone, served.env, "dvc", "pull")
    assert (clone / "data/models/generator.pt").read_bytes() == second_model


def test_a_pull_from_a_remote_missing_an_object_fails_and_status_names_the_file(served, first_run, tmp_path):
    clone = tmp_path / "clone"
    run(tmp_path, served.env, "git", "clone", "-q", str(served.repo), str(clone))
    lock = (clone / "dvc.lock").read_text()
    digest = hashlib.md5((served.repo / "data/models/generator.pt").read_bytes()).hexdigest()
    stored = served.remote / "files/md5" / digest[:2] / digest[2:]
    held = stored.with_suffix(".held")
    stored.rename(held)
    try:
        result = run(clone, served.env, "dvc", "pull", check=False)
        status = run(clone, served.env, "dvc", "status", "--cloud", check=False)
        run(clone, served.env, "dvc", "pull", "data/split")
    finally:
        held.rename(stored)
    assert result.returncode != 0
    assert "failed to pull data from the cloud" in result.stderr and f"{digest[:2]}/{digest[2:]}" in result.stderr
    assert re.search(r"deleted:\s+data/models/generator.pt", status.stdout)  # names the file the remote lacks
    assert files(clone / "data/split") == files(served.repo / "data/split")  # and what it has can still be pulled
    assert (clone / "dvc.lock").read_text() == lock


def test_a_second_rebuild_of_a_busy_workspace_is_refused_with_the_holder_named(served, first_run):
    with workspace_lock(served.repo, "test holder"):
        result = run(served.repo, served.env, sys.executable, "-m", "flows.pipeline", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("pipeline: error: ")
    assert "another pipeline run is rebuilding this workspace (test holder, pid" in result.stderr


def test_a_version_whose_push_failed_is_pushed_committed_and_tagged_by_the_next_run(served, first_run, tmp_path):
    """The next run rebuilds nothing, yet publishing catches up: push what the remote lacks, commit and tag."""
    edit_params(served.repo, train={"epochs": 3})
    head, tags = served.git("rev-parse", "HEAD"), served.git("tag", "--list").split()
    held = served.remote.with_name("dvc-remote.held")
    served.remote.rename(held)
    served.remote.write_text("a file where the remote folder should be: nothing can be written there")
    try:
        failed = served.trigger()
    finally:
        served.remote.unlink()
        held.rename(served.remote)
    assert failed.state.is_failed()
    assert failed.state.message.startswith("dvc push failed: [Errno 20] Not a directory: ") and "\n" not in failed.state.message
    assert served.git("rev-parse", "HEAD") == head and served.git("status", "--porcelain", "--", "dvc.lock")  # rebuilt, not committed

    caught_up = served.trigger()
    assert caught_up.state.is_completed(), caught_up.state.message
    summary = artifacts(caught_up.id)["pipeline-run"]
    assert "rebuilt |" not in summary and "0 files" not in summary  # nothing rebuilt, yet the model went up
    assert served.git("rev-parse", "HEAD") != head and not served.git("status", "--porcelain", "--", "dvc.lock", "params.yaml")
    assert "rebuilt but did not commit" in served.git("log", "-1", "--format=%s")
    assert len(served.git("tag", "--list").split()) == len(tags) + 2  # the dated version and the new model's
    clone = tmp_path / "clone"
    run(tmp_path, served.env, "git", "clone", "-q", str(served.repo), str(clone))
    run(clone, served.env, "dvc", "pull")
    assert files(clone / "data/models") == files(served.repo / "data/models")


def test_the_run_summary_sets_each_headline_number_beside_both_baselines_and_each_collections():
    from prefect.states import Completed

    from flows.pipeline import run_report

    headline = {"psnr": 22.5, "gray_psnr": 20.0, "tint_psnr": 20.5, "spread": 0.7, "real_psnr": 19.0, "gray_real_psnr": 18.0,
                "collections": {"sun": {"psnr": 21.0, "gray_psnr": 20.5, "tint_psnr": 20.75, "photos": 300}}}
    report = run_report({"evaluate": Completed(message="rebuilt")}, None, None, headline)
    assert "| psnr | 22.5 | 20 | 20.5 |" in report and "| spread | 0.7 |  |  |" in report
    assert "| real_psnr | 19 | 18 |  |" in report
    assert "Collection sun:" in report and "| psnr | 21 | 20.5 | 20.75 |" in report and "| photos | 300 |  |  |" in report
