"""A temporary copy of the repository, as a fresh clone has it, for tests and benchmarks that run DVC and the flows in
it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.dag import stage_names

REPO = Path(__file__).resolve().parents[2]  # a source checkout: this file is pipeline/testing/workspace.py


def tiny_params() -> dict:
    """The committed params.yaml with 2 categories × 14 images of 32² pixels, 1 epoch of a tiny GAN, and a pool of one
    process for per-image work (still a pool: a second process would only add its start-up to every stage)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seed"] = 7
    params["workers"] = 1
    params["source"].update(categories=["sky", "fruit"], per_category=14)
    params["source"]["synthetic"]["defect_rate"] = 0.3
    params["resize"]["size"] = 32
    params["split"]["test_per_category"] = 2
    params["train"].update(epochs=1, batch_size=8, crop=0, samples=2)
    params["train"]["generator"].update(base_filters=8, depth=3)
    params["train"]["discriminator"].update(base_filters=8, n_layers=2)
    return params


def edit_params(repo: Path, **sections: dict) -> None:
    """Update keys of params.yaml sections, e.g. edit_params(repo, train={"epochs": 2})."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def files(folder: Path) -> dict[Path, bytes]:
    """Every file under `folder`, by relative path, with its bytes: equal dicts mean byte-identical trees."""
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` ran, from its output."""
    return {stage for stage in stage_names() if f"Running stage '{stage}'" in output}


def run(cwd: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def make_workspace(root: Path, prefect_api_url: str | None) -> tuple[Path, dict[str, str]]:
    """root/repo: a git repository holding a copy of this one with tiny params, and the environment to run in it:
    reporting to the Prefect API at `prefect_api_url` (None: each stage starts a temporary server of its own).

    HOME is root/home, so the default DVC remote (~/.cache/colorize-pipeline/dvc-remote) is private to the test.
    """
    copy = root / "repo"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (REPO / name).is_file():  # a file deleted but not yet committed is not copied
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    (copy / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    (root / "home").mkdir()
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(root / "home")} | ({"PREFECT_API_URL": prefect_api_url} if prefect_api_url else {})
    setup = (["git", "init", "-q"], ["git", "config", "user.name", "Test"], ["git", "config", "user.email", "test@localhost"],
             ["git", "add", "-A"], ["git", "commit", "-qm", "copy"])
    for command in setup:
        run(copy, env, *command)
    return copy, env
