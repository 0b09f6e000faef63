"""Where the stages read and write, relative to the repository root where DVC runs them: the one home of these paths
for the code (flows, `colorize`, publishing), which dvc.yaml's deps and outs name too (tests/test_paths.py keeps the
two the same)."""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
RAW = DATA / "raw"  # scrape
CLEAN = DATA / "clean"  # clean
RESIZED = DATA / "resized"  # resize
SPLIT = DATA / "split"  # split
MODELS = DATA / "models"  # train: the generator and the checkpoint
MODEL = MODELS / "generator.pt"  # the model evaluate scores, `colorize` applies and the registry versions
TRAINING = DATA / "training"  # train: dvclive's curves and samples
EVAL = DATA / "eval"  # evaluate
