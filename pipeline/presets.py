"""Presets: the setups people run, as small params files in presets/ (only the keys they change).

    python -m pipeline.presets                      # list them
    python -m pipeline.presets cifar10 | xargs dvc exp run
    python -m pipeline.presets cifar10 -S train.epochs=3 | xargs dvc exp run     # the preset, with a change of yours

prints a preset as `-S key=value` arguments for `dvc exp run` (each shell-quoted, for xargs), after checking that
params.yaml with the preset applied is valid: an unknown key, a wrong value or a missing data folder is one line.
A change given with -S replaces the preset's value of that key (xargs puts the preset's arguments last, so one given
to `dvc exp run` itself would lose to them); a key that params.yaml lacks, such as a collection of
evaluate.collections, is printed as `-S +key=value`, DVC's way of adding one.
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


def _nested(setting: str) -> dict[str, Any]:
    """{"a": {"b": value}} for "a.b=value", the value read as YAML (as DVC reads it)."""
    key, equals, text = setting.partition("=")
    if not equals or not all(key.split(".")):
        raise ParamsError(f"-S {setting}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        tree: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"-S {setting}: the value is not YAML ({one_line(str(exc))})") from None
    for part in reversed(key.split(".")):
        tree = {part: tree}
    return tree


def preset_settings(name: str, params_file: Path = PARAMS_FILE, changes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The preset's dotted keys and values with `changes` ("key=value") applied over them, checked against params_file
    with them all applied (ParamsError if invalid)."""
    path = PRESETS / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"no preset {name!r}; choose one of {', '.join(available())}")
    preset = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for change in changes:
        preset = applied(preset, _nested(change))
    base = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    parse_params(applied(base, preset), origin=f"{params_file} with presets/{name}.yaml" + (" and -S" if changes else ""))
    return _leaves(preset)


def set_param_arguments(settings: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """`-S key=value` for each setting, the value as YAML flow (JSON) that DVC parses back to the same value; `+key` for
    a key that `base` (the parsed params file) lacks."""
    return [part for key, value in settings.items() for part in ("-S", f"{'' if _has(base, key) else '+'}{key}={json.dumps(value)}")]


def _has(tree: dict[str, Any], dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.presets", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="the preset to print as dvc exp run arguments (none: list the presets)")
    parser.add_argument("-S", "--set-param", dest="changes", action="append", default=[], metavar="KEY=VALUE",
                        help="a change over the preset, as dvc exp run -S takes it (repeatable)")
    args = parser.parse_args(argv)
    if args.name is None:
        for name, description in available().items():
            print(f"{name:12s} {description}")
        return 0
    try:
        settings = preset_settings(args.name, PARAMS_FILE, tuple(args.changes))
        base = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8")) or {}
    except (ParamsError, OSError, yaml.YAMLError) as exc:
        print(f"presets: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    print(shlex.join(set_param_arguments(settings, base)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
