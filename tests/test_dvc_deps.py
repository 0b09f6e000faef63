"""dvc.yaml's deps cover the code each stage runs: every project file its flow module imports, however indirectly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pipeline.config import Params, parse_params
from pipeline.core.imports import PACKAGES, import_closure
from pipeline.core.schema import StrictModel

REPO = Path(__file__).resolve().parents[1]


def runs_code(path: Path) -> bool:
    """Whether a file holds more than a docstring (a package's docstring-only __init__.py changes no output)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def uncovered(root: Path, stage: dict) -> list[str]:
    """The code files a stage runs that none of its deps (a file, or a folder above it) covers."""
    module = stage["cmd"].removeprefix("python -m ").split()[0]
    deps = [root / dep for dep in stage.get("deps", [])]
    return sorted(
        str(path.relative_to(root))
        for path in import_closure(module, root)
        if runs_code(path) and not any(path == dep or dep in path.parents for dep in deps)
    )


def surplus(root: Path, stage: dict) -> list[str]:
    """The code deps that name more than the stage runs: a file outside its import closure, or a folder holding one
    (so that an edit to code a stage does not run leaves it up to date)."""
    module = stage["cmd"].removeprefix("python -m ").split()[0]
    closure = import_closure(module, root)
    code_deps = [dep for dep in stage.get("deps", []) if dep.split("/")[0] in PACKAGES]
    return sorted(
        dep for dep in code_deps
        if any(path not in closure for path in ([root / dep] if dep.endswith(".py") else (root / dep).rglob("*.py")) if runs_code(path))
    )


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stages_deps_cover_every_project_file_it_imports(name):
    assert uncovered(REPO, STAGES[name]) == []


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stages_code_deps_are_only_what_it_imports(name):
    assert surplus(REPO, STAGES[name]) == []


def test_a_sources_code_is_a_dep_of_scrape_alone():
    """An edit to a source (a typo fixed in bing.py) makes scrape stale, and no later stage."""
    for path in (REPO / "pipeline/dataset/sources").glob("*.py"):
        if path.stem in ("__init__", "params"):
            continue
        stages = [name for name, stage in STAGES.items() if any(path == REPO / dep or REPO / dep in path.parents for dep in stage["deps"])]
        assert stages == ["scrape"], path.name


def test_a_stage_that_omits_an_imported_module_is_reported(tmp_path):
    """The check itself: a file imported two levels down, inside a function, is missed when no dep covers it."""
    for path, text in {
        "flows/__init__.py": '"""Flows."""\n',
        "flows/stage.py": "from pipeline.core import helpers\n",
        "pipeline/__init__.py": '"""Docstring only."""\n',
        "pipeline/core/__init__.py": "import logging\n",
        "pipeline/core/helpers.py": "def f():\n    from pipeline.model.net import N\n    from .rand import seed\n",
        "pipeline/model/net.py": "N = 1\n",
        "pipeline/core/rand.py": "seed = 0\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    stage = {"cmd": "python -m flows.stage", "deps": ["flows/stage.py", "pipeline/core/helpers.py"]}
    assert uncovered(tmp_path, stage) == ["pipeline/core/__init__.py", "pipeline/core/rand.py", "pipeline/model/net.py"]
    stage["deps"] += ["pipeline/core", "pipeline/model"]
    assert uncovered(tmp_path, stage) == [] and surplus(tmp_path, stage) == []
    (tmp_path / "pipeline/core/unused.py").write_text("X = 1\n", encoding="utf-8")
    stage["deps"] += ["pipeline/model/net.py", "flows/other.py"]
    (tmp_path / "flows/other.py").write_text("Y = 2\n", encoding="utf-8")
    assert surplus(tmp_path, stage) == ["flows/other.py", "pipeline/core"]


# ------------------------------------------------------------------------------------------- params a stage reads

EXECUTION = ("workers", "runner", "train.device", "train.compile", "train.loader", "train.checkpoint_minutes", "publish", "schedule")  # where and how, never what
WHOLE = {"model_dump", "model_dump_json", "model_copy", "__getstate__", "__reduce_ex__", "__iter__"}  # read every field


class ParamsReads:
    """Records the params a stage reads: every field of a params model read while recording, by dotted path. A whole
    section read at once (model_dump, pickling to a worker process: WHOLE) is recorded as the section's path; what
    Prefect and pydantic probe (keys, __dict__, ...) reads no value."""

    def __init__(self, params: StrictModel) -> None:
        self.paths: dict[int, str] = {}
        self.read: set[str] = set()
        self._index(params, "")

    def _index(self, model: StrictModel, path: str) -> None:
        self.paths[id(model)] = path
        for name in type(model).model_fields:
            value = object.__getattribute__(model, name)
            if isinstance(value, StrictModel):
                self._index(value, f"{path}.{name}".lstrip("."))

    def record(self, model: object, name: str) -> None:
        path = self.paths.get(id(model))
        if path is None:
            return
        if name in type(model).model_fields:
            if not isinstance(object.__getattribute__(model, name), StrictModel):  # a section is read through its fields
                self.read.add(f"{path}.{name}".lstrip("."))
        elif name in WHOLE and path:  # the top level's (Prefect storing the flow's parameters) are no stage's
            self.read.add(path)


def covered(key: str, listed: list[str], model: type[StrictModel]) -> bool:
    """Whether reading `key` is covered by the listed params: one of them is the key or above it, or every field
    below the key is covered."""
    if any(key == item or key.startswith(f"{item}.") for item in [*listed, *EXECUTION]):
        return True
    annotation = model.model_fields[key.split(".")[0]].annotation
    for part in key.split(".")[1:]:
        annotation = annotation.model_fields[part].annotation
    return isinstance(annotation, type) and issubclass(annotation, StrictModel) and all(
        covered(f"{key}.{name}", listed, model) for name in annotation.model_fields
    )


def params_listed(stage: dict) -> list[str]:
    return [str(item) for item in stage.get("params", [])]


@pytest.fixture
def tiny_workspace(tmp_path, monkeypatch, prefect_api_url):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_stage_reads_no_param_that_its_params_do_not_list(tiny_workspace, monkeypatch):
    """Each stage in turn, on a tiny dataset, with every read of params recorded; the reads of execution params
    (EXECUTION) are free, they change where and how a stage runs, not its outputs."""
    import importlib

    params = parse_params({
        "workers": 1,
        "source": {"categories": ["sky", "sea"], "per_category": 8, "synthetic": {"min_side": 64, "max_side": 96}},
        "clean": {"min_side": 32}, "resize": {"size": 32}, "split": {"test_per_category": 2},
        "train": {"epochs": 1, "batch_size": 4, "crop": 0, "samples": 1, "generator": {"base_filters": 4, "depth": 3},
                  "discriminator": {"base_filters": 4, "n_layers": 1}},
    })
    reads = ParamsReads(params)
    original = StrictModel.__getattribute__

    def traced(model: StrictModel, name: str):
        reads.record(model, name)
        return original(model, name)

    found = {}
    for name in STAGES:
        reads.read = set()
        with monkeypatch.context() as patch:
            patch.setattr(StrictModel, "__getattribute__", traced)
            importlib.import_module(f"flows.{name}").run(params)
        found[name] = sorted(reads.read)
    assert {"source.categories", "source.synthetic.defect_rate"} <= set(found["scrape"]) and "clean" in found["clean"]  # it records
    assert "train.epochs" in found["train"] and "split.test_per_category" in found["split"]
    unlisted = {name: [key for key in keys if not covered(key, params_listed(STAGES[name]), Params)] for name, keys in found.items()}
    assert unlisted == {name: [] for name in STAGES}


def test_a_read_not_listed_is_reported():
    assert covered("clean", ["clean.min_side", "clean.max_pixels", "clean.min_chroma", "clean.near_duplicate_distance",
                             "clean.near_duplicate_correlation"], Params)
    assert not covered("clean", ["clean.min_side"], Params)
    assert covered("train.generator.depth", ["train.generator"], Params)
    assert not covered("train.lr", ["train.epochs"], Params) and covered("runner.kind", [], Params)
