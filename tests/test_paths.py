"""pipeline/paths.py and dvc.yaml name the same stage inputs and outputs: the code's one home of them, and DVC's."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline import paths

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))


def _out(entry: str | dict) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def test_every_data_path_of_dvc_yaml_is_one_of_pipeline_paths_and_back():
    named = {value.as_posix() for name, value in vars(paths).items() if name.isupper() and isinstance(value, Path)} - {"data"}
    stages = DVC["stages"].values()
    used = {dep for stage in stages for dep in stage["deps"] if dep.startswith("data/")} | {_out(out) for stage in stages for out in stage["outs"]}
    assert used == named
    assert DVC["artifacts"]["colorizer"]["path"] == paths.MODEL.as_posix()


def test_each_stage_writes_the_paths_the_next_ones_read():
    stages = DVC["stages"]
    assert [_out(out) for out in stages["scrape"]["outs"]] == [paths.RAW.as_posix()]
    chain = [("clean", paths.RAW, paths.CLEAN), ("resize", paths.CLEAN, paths.RESIZED), ("split", paths.RESIZED, paths.SPLIT)]
    for name, source, target in chain:
        assert source.as_posix() in stages[name]["deps"] and [_out(out) for out in stages[name]["outs"]] == [target.as_posix()]
    assert [_out(out) for out in stages["train"]["outs"]] == [paths.MODELS.as_posix(), paths.TRAINING.as_posix()]
    assert {paths.SPLIT.as_posix(), paths.MODEL.as_posix()} <= set(stages["evaluate"]["deps"])
    assert [_out(out) for out in stages["evaluate"]["outs"]] == [paths.EVAL.as_posix()]
