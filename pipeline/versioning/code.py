"""The code stage: for each stage of dvc.yaml that runs a flow, the sha256 of every project file it runs (its flow
module and what that imports, however indirectly), written as sha256sum writes them into the file that is the stage's
code dep. An edit to a file makes stale exactly the stages that run it."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.fsutil import atomic_write_bytes
from pipeline.core.imports import ROOT, code_hashes
from pipeline.dag import code_dep, stages


def write_code_deps(root: Path = ROOT) -> None:
    """Write each stage's code dep (under the current folder, as DVC runs the stage), hashing the packages in `root`."""
    for found in stages():
        target = code_dep(found.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, "".join(f"{digest}  {path}\n" for path, digest in code_hashes(found.module, root).items()).encode())


if __name__ == "__main__":
    argparse.ArgumentParser(prog="python -m pipeline.versioning.code", description=__doc__).parse_args()
    write_code_deps()
