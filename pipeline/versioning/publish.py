"""Publish a rebuilt version: push its artifacts to the DVC remote, commit and tag dvc.lock in git."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

from pipeline.core.errors import PipelineError

VERSION_FILES = ("dvc.lock", "params.yaml")
TAG_PREFIX = "colorize-"


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
        raise PublishError(f"dvc push failed: {exc} (the remote is set in .dvc/config; see README, 'Versioned datasets and models')") from None


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
