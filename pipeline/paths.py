"""The paths of dvc.yaml's model half that code beyond one stage's flow opens (`colorize`, publishing, the pipeline's
summary), relative to the repository root where DVC runs the stages; read from dvc.yaml (pipeline.dag). A data stage's
flow takes its own input and output from its stage."""

from __future__ import annotations

from pathlib import Path

from pipeline.dag import artifact, stage

DATA = Path("data")
(SPLIT,) = stage("train").inputs  # the training and test photos
MODELS, TRAINING = stage("train").outputs  # the generator and the checkpoint; dvclive's curves and samples
MODEL = artifact("colorizer")  # the model evaluate scores, `colorize` applies and the registry versions
(EVAL,) = stage("evaluate").outputs
