"""dvc.yaml's deps cover the code each stage runs: every project file its flow module imports, however indirectly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pipeline.config import Params, parse_params
from pipeline.core.schema import StrictModel

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "flows")


def _module_file(root: Path, module: str) -> Path | None:
    """The file of a project module (`a.b` → a/b.py or a/b/__init__.py), or None when it is not one of ours."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(root: Path, module: str) -> list[Path]:
    """The __init__.py of every package above a module: importing a.b.c runs a/__init__.py and a/b/__init__.py."""
    parts = module.split(".")
    return [path for i in range(1, len(parts)) if (path := root.joinpath(*parts[:i], "__init__.py")).is_file()]


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every module an import statement in the file names, at any depth in the file (also `from a import b` as a.b)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    if "pkgutil.iter_modules(__path__)" in path.read_text(encoding="utf-8"):  # a registry that imports its package's modules
        names.update(f"{package}.{child.stem}" for child in path.parent.glob("*.py"))
    return names


def import_closure(root: Path, module: str) -> set[Path]:
    """The project files that running `python -m module` executes: the module, what it imports, transitively."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_file(root, name)
        if path is None or path in seen:
            continue
        seen.add(path)
        seen.update(_package_inits(root, name))
        pending.extend(_imported_modules(path, name))
    return seen


def _runs_code(path: Path) -> bool:
    """Whether a file holds more than a docstring (a package's docstring-only __init__.py changes no output)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def uncovered(root: Path, stage: dict) -> list[str]:
    """The code files a stage runs that none of its deps (a file, or a folder above it) covers."""
    module = stage["cmd"].removeprefix("python -m ").split()[0]
    deps = [root / dep for dep in stage.get("deps", [])]
    return sorted(
        str(path.relative_to(root))
        for path in import_closure(root, module)
        if _runs_code(path) and not any(path == dep or dep in path.parents for dep in deps)
    )


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stages_deps_cover_every_project_file_it_imports(name):
    assert uncovered(REPO, STAGES[name]) == []


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
    assert uncovered(tmp_path, stage) == []


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
