"""dvc.yaml's deps cover what each stage runs: its code dep holds the hashes of every project file its flow module
imports, however indirectly (the code stage writes them), and its params list every param it reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import dag
from pipeline.config import Params, parse_params
from pipeline.core.imports import PACKAGES, import_closure
from pipeline.core.schema import StrictModel
from pipeline.versioning.code import write_code_deps

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.fixture(scope="module")
def code_deps(tmp_path_factory) -> Path:
    """A folder where the code stage has written its files (data/code/...), as DVC runs it."""
    folder = tmp_path_factory.mktemp("code")
    subprocess.run([sys.executable, "-m", "pipeline.versioning.code"], cwd=folder, check=True)
    return folder


def listed_files(code_deps: Path, name: str) -> list[str]:
    return [line.split("  ", 1)[1] for line in (code_deps / dag.code_dep(name)).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", dag.stage_names())
def test_a_stages_code_dep_is_its_file_of_the_code_stage_alone(name):
    deps = STAGES[name]["deps"]
    assert str(dag.code_dep(name)) in deps and [dep for dep in deps if dep.split("/")[0] in PACKAGES] == []


def test_the_code_stage_depends_on_every_package_and_runs_first():
    assert sorted(STAGES[dag.CODE_STAGE]["deps"]) == sorted(PACKAGES) and next(iter(STAGES)) == dag.CODE_STAGE


def test_bytecode_a_run_leaves_is_no_code_dep():
    """__pycache__ folders (Python writes them unless PYTHONDONTWRITEBYTECODE is set) would make the code stage stale
    after every first run on a machine, and rewrite dvc.lock."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        assert repo.dvcignore.is_ignored(repo.fs, str(REPO / "pipeline/dataset/__pycache__/clean.cpython-312.pyc"))
        assert not repo.dvcignore.is_ignored(repo.fs, str(REPO / "pipeline/dataset/clean.py"))


@pytest.mark.parametrize("name", dag.stage_names())
def test_a_stages_code_dep_lists_each_file_it_imports_with_its_hash(code_deps, name):
    closure = import_closure(dag.stage(name).module)
    assert listed_files(code_deps, name) == sorted(path.relative_to(REPO).as_posix() for path in closure)
    checked = subprocess.run(["sha256sum", "--check", "--quiet", code_deps / dag.code_dep(name)], cwd=REPO, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_sources_code_is_in_the_code_dep_of_scrape_alone(code_deps):
    """An edit to a source (a typo fixed in bing.py) makes scrape stale, and no later stage."""
    for path in (REPO / "pipeline/dataset/sources").glob("*.py"):
        if path.stem in ("__init__", "params"):
            continue
        relative = path.relative_to(REPO).as_posix()
        assert [name for name in dag.stage_names() if relative in listed_files(code_deps, name)] == ["scrape"], path.name


def test_an_edited_file_changes_the_code_dep_of_the_stages_that_run_it_alone(tmp_path, monkeypatch):
    """The closure reaches a module imported two levels down, inside a function; the file of a stage that does not
    run the edited module keeps its bytes."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    write_code_deps(tmp_path)
    before = {name: dag.code_dep(name).read_bytes() for name in dag.stage_names()}
    resize = tmp_path / "pipeline/dataset/resize.py"
    resize.write_text(resize.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    write_code_deps(tmp_path)
    changed = [name for name in dag.stage_names() if dag.code_dep(name).read_bytes() != before[name]]
    assert changed == ["resize", "evaluate"]


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
    for name in dag.stage_names():
        reads.read = set()
        with monkeypatch.context() as patch:
            patch.setattr(StrictModel, "__getattribute__", traced)
            importlib.import_module(f"flows.{name}").run(params)
        found[name] = sorted(reads.read)
    assert {"source.categories", "source.synthetic.defect_rate"} <= set(found["scrape"]) and "clean" in found["clean"]  # it records
    assert "train.epochs" in found["train"] and "split.test_per_category" in found["split"]
    unlisted = {name: [key for key in keys if not covered(key, params_listed(STAGES[name]), Params)] for name, keys in found.items()}
    assert unlisted == {name: [] for name in dag.stage_names()}


def test_a_read_not_listed_is_reported():
    assert covered("clean", ["clean.min_side", "clean.max_pixels", "clean.min_chroma", "clean.near_duplicate_distance",
                             "clean.near_duplicate_correlation"], Params)
    assert not covered("clean", ["clean.min_side"], Params)
    assert covered("train.generator.depth", ["train.generator"], Params)
    assert not covered("train.lr", ["train.epochs"], Params) and covered("runner.kind", [], Params)
