"""The DAG as dvc.yaml writes it, the one place it is written: the stages in their order, the flow module each one
runs, the data it reads and what it writes. The code reads them here (pipeline/paths.py names the outputs the stages
open); DVC reads the same file. Its first stage, `code`, is DVC's bookkeeping rather than a step of the pipeline: it
hashes the code each stage runs into the file that is that stage's code dep."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DVC_FILE = Path(__file__).resolve().parents[1] / "dvc.yaml"  # in the repository root, beside this package
CODE_STAGE = "code"


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # the flow its command runs: `python -m <module>`
    inputs: tuple[Path, ...]  # the data it reads: its deps under data/
    outputs: tuple[Path, ...]  # its outs


@cache
def _dvc_yaml() -> dict:
    return yaml.load(DVC_FILE.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _stage(name: str) -> Stage:
    entry = _dvc_yaml()["stages"][name]
    return Stage(
        name,
        entry["cmd"].removeprefix("python -m ").split()[0],
        tuple(Path(dep) for dep in entry.get("deps", []) if dep.startswith("data/")),
        tuple(Path(out if isinstance(out, str) else next(iter(out))) for out in entry.get("outs", [])),
    )


@cache
def stages() -> tuple[Stage, ...]:
    """dvc.yaml's stages that run a flow, in the file's order, which runs each one after the stages whose outputs it
    reads; their inputs leave out their code dep."""
    codes = code_stage().outputs
    return tuple(
        Stage(found.name, found.module, tuple(dep for dep in found.inputs if not any(dep.is_relative_to(out) for out in codes)), found.outputs)
        for found in map(_stage, _dvc_yaml()["stages"])
        if found.name != CODE_STAGE
    )


def code_stage() -> Stage:
    """The stage that writes, for each stage, the hashes of the code it runs (its code dep: `code_dep`)."""
    return _stage(CODE_STAGE)


def code_dep(name: str) -> Path:
    """The code dep of a stage: the sha256 of each file it runs, as sha256sum writes them."""
    return code_stage().outputs[0] / f"{name}.sha256"


def stage(name: str) -> Stage:
    for found in stages():
        if found.name == name:
            return found
    raise LookupError(f"{DVC_FILE.name} has no stage {name!r}")


def stage_names() -> tuple[str, ...]:
    return tuple(found.name for found in stages())


def data_stages() -> tuple[str, ...]:
    """The stages that build the dataset: those before the first that writes a model (scrape to split)."""
    names = stage_names()
    return names[: names.index(model_stage().name)]


def model_stage() -> Stage:
    """The stage that writes the model dvc.yaml's `colorizer` artifact names."""
    found = [each for each in stages() if any(artifact().is_relative_to(out) for out in each.outputs)]
    if not found:
        raise LookupError(f"{DVC_FILE.name}: no stage writes the colorizer artifact {artifact()}")
    return found[0]


def artifact(name: str = "colorizer") -> Path:
    """The path of one of dvc.yaml's artifacts (the model registry's entry)."""
    return Path(_dvc_yaml()["artifacts"][name]["path"])
