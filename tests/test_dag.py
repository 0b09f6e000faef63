"""dvc.yaml is where the DAG is written: pipeline.dag reads it, in an order that runs each stage after what it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import dag, paths
from pipeline.core.imports import ROOT


def test_each_stage_reads_what_the_stages_before_it_write():
    written: list[Path] = []
    for stage in dag.stages():
        assert stage.inputs or not written, f"{stage.name} reads no earlier stage's output"
        for needed in stage.inputs:
            assert any(needed == out or out in needed.parents for out in written), f"{stage.name} reads {needed} before it is written"
        written += stage.outputs


def test_each_stage_runs_its_own_flow_and_writes_under_data():
    for stage in dag.stages():
        assert stage.module == f"flows.{stage.name}" and (ROOT / "flows" / f"{stage.name}.py").is_file()
        assert stage.outputs and all(out.parts[0] == "data" for out in stage.outputs)


def test_the_stages_split_into_the_data_half_and_the_model_half():
    names, model = dag.stage_names(), dag.model_stage()
    assert dag.data_stages() == names[: names.index(model.name)] and dag.data_stages()[0] == names[0]
    assert paths.MODEL.parent == paths.MODELS and paths.MODELS in model.outputs


def test_a_stage_not_in_dvc_yaml_is_not_found():
    with pytest.raises(LookupError, match="dvc.yaml has no stage 'dedupe'"):
        dag.stage("dedupe")


def test_an_artifact_no_stage_writes_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(dag, "artifact", lambda name="colorizer": Path("data/elsewhere/generator.pt"))
    with pytest.raises(LookupError, match="dvc.yaml: no stage writes the colorizer artifact data/elsewhere/generator.pt"):
        dag.model_stage()
