"""The pipeline flow's building blocks: stage order, what changed, the workspace lock, and the git commit and tag."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from flows.pipeline import schedule
from pipeline.config import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import LockHeld
from pipeline.dag import CODE_STAGE, stage_names
from pipeline.testing.workspace import REPO, edit_params, make_workspace
from pipeline.versioning.publish import PublishError, commit_version, register_model, uncommitted
from pipeline.versioning.rebuild import changed_stages, stage_order, workspace_lock

pytestmark = pytest.mark.slow  # git, DVC and served deployments


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.name", "Test")
    git(tmp_path, "config", "user.email", "test@localhost")
    for name in ("dvc.lock", "params.yaml", "notes.txt"):
        (tmp_path / name).write_text("v1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "start")
    return tmp_path


def test_the_stages_come_in_the_dags_order_the_code_stage_first():
    assert stage_order(REPO) == [CODE_STAGE, *stage_names()]


def test_changed_stages_are_those_whose_lock_entry_differs():
    before = {"scrape": {"outs": 1}, "clean": {"outs": 2}}
    after = {"scrape": {"outs": 1}, "clean": {"outs": 3}, "resize": {"outs": 4}}
    assert changed_stages(before, after) == ["clean", "resize"]
    assert changed_stages(after, after) == []


def test_a_second_holder_of_the_workspace_is_refused_by_name_until_the_first_lets_go(tmp_path):
    with workspace_lock(tmp_path, "nightly run"):
        with pytest.raises(LockHeld, match=r"another pipeline run is rebuilding this workspace \(nightly run, pid \d+, since "):
            with workspace_lock(tmp_path, "manual run"):
                pass
    with workspace_lock(tmp_path, "manual run"):
        pass


def test_an_unchanged_version_commits_nothing(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert commit_version(repo, "nothing", date(2026, 1, 2)) is None
    assert git(repo, "rev-parse", "HEAD") == head and not git(repo, "tag")


def test_a_changed_version_commits_only_its_files_and_takes_a_free_tag(repo):
    (repo / "notes.txt").write_text("work in progress\n")
    tags = []
    for content in ("v2\n", "v3\n"):
        (repo / "dvc.lock").write_text(content)
        commit, tag = commit_version(repo, f"rebuilt {content.strip()}", date(2026, 1, 2))
        assert git(repo, "rev-parse", "--short", "HEAD").strip() == commit
        tags.append(tag)
    assert tags == ["colorize-2026-01-02", "colorize-2026-01-02-2"]
    assert git(repo, "show", "--name-only", "--format=%s", "HEAD").split() == ["rebuilt", "v3", "dvc.lock"]
    assert git(repo, "status", "--porcelain").strip() == "M notes.txt"  # other work is left alone


def test_committing_outside_git_names_the_param(tmp_path):
    with pytest.raises(PublishError, match="not in a git repository, which publish.git_commit needs"):
        commit_version(tmp_path, "x", None)


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        (None, "Mars/Base", "--timezone: unknown time zone; use an IANA name such as UTC or Europe/Paris (got 'Mars/Base')"),
        ("61 * * * *", None, '--cron: Invalid cron string: "61 * * * *"'),
        ("nightly", "Europe/Paris", '--cron: Invalid cron string: "nightly"'),
    ],
)
def test_a_bad_schedule_is_one_line_naming_the_option(cron, zone, message):
    with pytest.raises(PipelineError) as info:
        schedule(parse_params({}), cron, zone)
    assert str(info.value) == message


def test_serve_with_an_unknown_time_zone_exits_with_one_line_before_serving():
    result = subprocess.run([sys.executable, "-m", "flows.pipeline", "serve", "--timezone", "Mars/Base"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pipeline: error: --timezone: unknown time zone; use an IANA name such as UTC or Europe/Paris (got 'Mars/Base')"
    ]


def test_the_schedule_comes_from_params_unless_given():
    params = parse_params({"schedule": {"cron": "30 1 * * 1-5", "timezone": "Europe/Paris"}})
    assert (schedule(params, None, None).cron, schedule(params, None, None).timezone) == ("30 1 * * 1-5", "Europe/Paris")
    assert (schedule(params, "0 3 * * *", "UTC").cron, schedule(params, "0 3 * * *", "UTC").timezone) == ("0 3 * * *", "UTC")


def test_anything_differing_from_head_is_committed_even_without_a_rebuild(repo):
    assert not uncommitted(repo)
    (repo / "dvc.lock").write_text("v2\n")  # e.g. an earlier rebuild whose push failed, so it was never committed
    assert uncommitted(repo)
    assert commit_version(repo, "catch up", None) is not None and not uncommitted(repo)


def test_the_pipeline_outside_git_with_git_commit_fails_before_the_first_stage(tmp_path, prefect_api_url):
    workspace, env = make_workspace(tmp_path, prefect_api_url)
    edit_params(workspace, publish={"git_commit": True})
    shutil.rmtree(workspace / ".git")
    result = subprocess.run([sys.executable, "-m", "flows.pipeline"], cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"pipeline: error: {workspace}: not in a git repository, which publish.git_commit needs"
    assert sorted(path.name for path in (workspace / "data").iterdir()) == [".gitignore"]  # no stage ran


def lock_with_models(md5: str) -> str:
    return f"schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: data/models\n      hash: md5\n      md5: {md5}\n"


def test_a_new_model_is_registered_as_the_next_version_and_the_same_model_is_not(repo):
    """As `gto register`: annotated tags colorizer@vX.Y.Z, the patch bumped; none when the model did not change."""
    (repo / "dvc.lock").write_text(lock_with_models("aaa.dir"))
    commit_version(repo, "first", None)
    assert register_model(repo, "first model") == "colorizer@v0.0.1"
    assert git(repo, "cat-file", "-t", "colorizer@v0.0.1").strip() == "tag"  # annotated, as DVC's registry needs
    (repo / "params.yaml").write_text("v2\n")
    commit_version(repo, "params only", None)
    assert register_model(repo, "same model") is None
    git(repo, "tag", "-a", "colorizer@v1.2.3", "-m", "registered by hand")
    (repo / "dvc.lock").write_text(lock_with_models("bbb.dir"))
    commit_version(repo, "second", None)
    assert register_model(repo, "second model") == "colorizer@v1.2.4"
