"""Publish a rebuilt version: push its artifacts to the DVC remote, commit and tag dvc.lock in git."""

from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path

import yaml

from pipeline.core.errors import PipelineError
from pipeline.paths import MODELS

VERSION_FILES = ("dvc.lock", "params.yaml")
TAG_PREFIX = "colorize-"
MODEL_ARTIFACT = "colorizer"  # dvc.yaml's `artifacts:` name for the model (paths.MODEL)


class PublishError(PipelineError):
    """The remote or git refused what the pipeline tried to publish."""


def push(root: Path) -> int:
    """`dvc push` of every stage output to the default remote; returns how many files went up (0: up to date)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            return repo.push()
    except (DvcException, OSError) as exc:  # OSError: a local remote that cannot be written
        raise PublishError(f"dvc push failed: {exc} (the remote is set in .dvc/config; see docs/versioning.md)") from None


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise PublishError(f"git {args[0]} failed: {message[-1] if message else f'exit code {result.returncode}'}")
    return result.stdout


def free_tag(root: Path, day: date) -> str:
    """colorize-YYYY-MM-DD, or the first of -2, -3, ... that is not taken yet."""
    taken = set(_git(root, "tag", "--list", f"{TAG_PREFIX}{day:%Y-%m-%d}*").split())
    name = f"{TAG_PREFIX}{day:%Y-%m-%d}"
    suffix = 2
    while name in taken:
        name = f"{TAG_PREFIX}{day:%Y-%m-%d}-{suffix}"
        suffix += 1
    return name


def require_git(root: Path) -> None:
    """Fail unless `root` is in a git repository (checked before a rebuild that will commit its result)."""
    try:
        _git(root, "rev-parse", "--git-dir")
    except PublishError:
        raise PublishError(f"{root.resolve()}: not in a git repository, which publish.git_commit needs") from None


def uncommitted(root: Path) -> bool:
    """Whether dvc.lock or params.yaml differ from the last commit: a version not yet committed."""
    return bool(_git(root, "status", "--porcelain", "--", *VERSION_FILES).strip())


def commit_version(root: Path, message: str, tag_day: date | None) -> tuple[str, str | None] | None:
    """Commit dvc.lock and params.yaml when they differ from the last commit (and tag the commit); returns (commit, tag),
    or None if there is nothing to commit."""
    require_git(root)
    if not uncommitted(root):
        return None
    _git(root, "add", "--", *VERSION_FILES)
    _git(root, "commit", "--quiet", "-m", message, "--", *VERSION_FILES)
    commit = _git(root, "rev-parse", "--short", "HEAD").strip()
    tag = None
    if tag_day is not None:
        tag = free_tag(root, tag_day)
        _git(root, "tag", "-a", tag, "-m", message)
    return commit, tag


def register_model(root: Path, message: str) -> str | None:
    """Register the committed model as the next version of the colorizer artifact, as `gto register` does (an annotated
    tag colorizer@vX.Y.Z, the patch number bumped; `dvc artifacts get` and DVC Studio read it), unless the model is
    the one the latest version already holds. Returns the tag, or None."""
    versions = sorted(
        (tuple(int(part) for part in match.groups()), tag)
        for tag in _git(root, "tag", "--list", f"{MODEL_ARTIFACT}@v*").split()
        if (match := re.fullmatch(rf"{MODEL_ARTIFACT}@v(\d+)\.(\d+)\.(\d+)", tag))
    )
    if versions and _models_hash(_git(root, "show", f"{versions[-1][1]}:dvc.lock")) == _models_hash(_git(root, "show", "HEAD:dvc.lock")):
        return None
    major, minor, patch = versions[-1][0] if versions else (0, 0, 0)
    tag = f"{MODEL_ARTIFACT}@v{major}.{minor}.{patch + 1}"
    _git(root, "tag", "-a", tag, "-m", message)
    return tag


def _models_hash(lock_text: str) -> str | None:
    """The hash dvc.lock records for the train stage's models folder (None when the model was never trained)."""
    outs = ((yaml.safe_load(lock_text) or {}).get("stages", {}).get("train") or {}).get("outs", [])
    return next((out.get("md5") for out in outs if out.get("path") == MODELS.as_posix()), None)
