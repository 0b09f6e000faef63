"""Presets: small params files that `python -m pipeline.presets NAME` turns into `dvc exp run -S` arguments."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError, parse_params
from pipeline.presets import PRESETS, applied, available, main, preset_settings
from pipeline.testing.workspace import REPO, run

NAMES = ["bing-gpu", "cifar10", "general", "scenes"]


@pytest.fixture
def data_folders(tmp_path, monkeypatch):
    """A working directory where the presets' data folders exist (empty)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "external" / "scenes").mkdir(parents=True)
    return tmp_path


def test_the_presets_are_listed_with_what_they_are(capsys):
    assert sorted(available()) == NAMES
    assert main([]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == NAMES and all(len(line.split()) > 5 for line in listed)


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_applied_to_the_committed_params_is_valid(name, data_folders):
    settings = preset_settings(name, REPO / "params.yaml")
    assert settings and all("." in key for key in settings)


def test_a_missing_data_folder_or_an_unknown_preset_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=r"with presets/scenes.yaml: source.folder.path: 'data/external/scenes' is not a directory$"):
        preset_settings("scenes", REPO / "params.yaml")
    assert main(["imagenet"]) == 2
    assert capsys.readouterr().err == "presets: error: no preset 'imagenet'; choose one of bing-gpu, cifar10, general, scenes\n"


def test_a_preset_with_an_unknown_key_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.presets.PRESETS", tmp_path)
    (tmp_path / "typo.yaml").write_text("# a typo\ntrain:\n  epoch: 3\n")
    with pytest.raises(ParamsError, match="train.epoch: unknown key"):
        preset_settings("typo", REPO / "params.yaml")


def test_a_change_given_with_S_replaces_the_presets_value_and_a_new_key_is_added_with_a_plus(data_folders, capsys):
    (data_folders / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    assert main(["scenes", "-S", "train.batch_size=8", "-S", "evaluate.collections.mine=data/external/scenes"]) == 0
    printed = shlex.split(capsys.readouterr().out)
    assert "train.batch_size=8" in printed and "train.batch_size=32" not in printed
    assert '+evaluate.collections.mine="data/external/scenes"' in printed and "train.crop=64" in printed


@pytest.mark.parametrize(("change", "message"), [
    ("train.nope=1", "with presets/scenes.yaml and -S: train.nope: unknown key"),
    ("train.epochs", "-S train.epochs: expected KEY=VALUE"),
    ("train.epochs=many", "train.epochs: "),
])
def test_a_bad_change_is_one_line_naming_it(data_folders, capsys, change, message):
    (data_folders / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    assert main(["scenes", "-S", change]) == 2
    error = capsys.readouterr().err
    assert error.startswith("presets: error: ") and message in error and error.count("\n") == 1


@pytest.mark.slow
def test_dvc_exp_run_with_the_printed_arguments_sets_exactly_the_preset(data_folders):
    """A real DVC repository: `python -m pipeline.presets scenes -S <a new key> | xargs dvc exp run` leaves params.yaml
    equal to the committed one with the preset and the change applied."""
    repo = data_folders
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    (repo / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    stage = {"stages": {"show": {"cmd": "python -c pass", "params": ["source", "clean", "resize", "split", "train", "evaluate"]}}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(stage))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                    ["git", "-c", "user.name=T", "-c", "user.email=t@localhost", "add", "-A"],
                    ["git", "-c", "user.name=T", "-c", "user.email=t@localhost", "commit", "-qm", "params"]):
        run(repo, env, *command)
    printed = subprocess.run([sys.executable, "-m", "pipeline.presets", "scenes", "-S", "evaluate.collections.mine=data/external/scenes"],
                             cwd=repo, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True).stdout
    run(repo, env, "dvc", "exp", "run", *shlex.split(printed))
    preset = applied(yaml.safe_load((PRESETS / "scenes.yaml").read_text()), {"evaluate": {"collections": {"mine": "data/external/scenes"}}})
    after = yaml.safe_load((repo / "params.yaml").read_text())
    assert after == applied(yaml.safe_load((REPO / "params.yaml").read_text()), preset)
    assert parse_params(after).source.kind == "folder"
