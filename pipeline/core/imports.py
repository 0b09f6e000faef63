"""The project files a module runs: itself and what it imports, however indirectly, read from the source (nothing is
imported). The code stage hashes each stage's closure, which is the stage's code dep in dvc.yaml, and a training
checkpoint is tied to the hashes of the training's closure."""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.core.fsutil import sha256_file

PACKAGES = ("pipeline", "flows")
ROOT = Path(__file__).resolve().parents[2]  # the repository root, which holds the packages


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
    """Every module an import statement in the file names, at any depth in the file (also `from a import b` as a.b); a
    registry that imports its package's modules by name (`import_module(f"{__package__}.{...}")`) names them all."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    text = path.read_text(encoding="utf-8")
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    if 'import_module(f"{__package__}.' in text:
        names.update(f"{package}.{child.stem}" for child in path.parent.glob("*.py"))
    return names


def import_closure(module: str, root: Path = ROOT) -> set[Path]:
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


def code_hashes(module: str, root: Path = ROOT) -> dict[str, str]:
    """The sha256 of each project file that running `python -m module` executes, by path from the root, in path order."""
    return {path.relative_to(root).as_posix(): sha256_file(path) for path in sorted(import_closure(module, root))}
