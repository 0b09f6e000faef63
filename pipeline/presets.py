"""Presets: the setups people run, as small params files in presets/ (only the keys they change).

    python -m pipeline.presets                      # list them
    python -m pipeline.presets cifar10 | xargs dvc exp run

prints a preset as `-S key=value` arguments for `dvc exp run` (each shell-quoted, for xargs), after checking that
params.yaml with the preset applied is valid: an unknown key, a wrong value or a missing data folder is one line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import PARAMS_FILE, ParamsError, parse_params
from pipeline.core.errors import one_line

PRESETS = Path(__file__).resolve().parents[1] / "presets"


def available() -> dict[str, str]:
    """Each preset's name and the first line of its description (the file's leading comment)."""
    presets = {}
    for path in sorted(PRESETS.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        presets[path.stem] = first.removeprefix("#").strip()
    return presets


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": value} for every non-mapping value of a nested mapping."""
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        leaves |= _leaves(value, f"{dotted}.") if isinstance(value, dict) and value else {dotted: value}
    return leaves


def applied(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` (a parsed params file) with the preset's `changes` applied: nested mappings merged, other values replaced."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = applied(merged.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


def preset_settings(name: str, params_file: Path = PARAMS_FILE) -> dict[str, Any]:
    """The preset's dotted keys and values, checked against params_file with them applied (ParamsError if invalid)."""
    path = PRESETS / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"no preset {name!r}; choose one of {', '.join(available())}")
    changes = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    base = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    parse_params(applied(base, changes), origin=f"{params_file} with presets/{name}.yaml")
    return _leaves(changes)


def set_param_arguments(settings: dict[str, Any]) -> list[str]:
    """`-S key=value` for each setting, the value as YAML flow (JSON) that DVC parses back to the same value."""
    return [part for key, value in settings.items() for part in ("-S", f"{key}={json.dumps(value)}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.presets", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="the preset to print as dvc exp run arguments (none: list the presets)")
    args = parser.parse_args(argv)
    if args.name is None:
        for name, description in available().items():
            print(f"{name:12s} {description}")
        return 0
    try:
        settings = preset_settings(args.name)
    except (ParamsError, OSError, yaml.YAMLError) as exc:
        print(f"presets: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    print(shlex.join(set_param_arguments(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
