"""train: the pix2pix-style GAN colorizer (L -> ab in CIELAB) on data/split; resumes from data/models/checkpoint.pt.
With train.nproc > 1 it runs again as that many torchrun processes (DistributedDataParallel), of which rank 0 writes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

from flows.artifacts import create_picture_artifact
from flows.cli import call_flow, main
from pipeline.config import Params
from pipeline.model.distributed import is_main_process, needs_torchrun
from pipeline.model.train import TrainingInfo, TrainingRun, train_model
from pipeline.model.training_log import samples_image
from pipeline.paths import MODELS, SPLIT, TRAINING


def run_training(params: Params, split: Path = SPLIT, models: Path = MODELS, live: Path = TRAINING) -> TrainingInfo:
    """The training itself, without Prefect: what the flow runs (tests and benchmarks name folders of their own)."""
    return train_model(split, models, live, params.train, TrainingRun(params.seed, params.workers, params.source.kind))


@flow(name="train")
def train(params: Params) -> TrainingInfo:
    info = run_training(params)
    create_table_artifact(
        key="training",
        table=[{"epoch": epoch, **{k: round(v, 4) for k, v in row.items()}} for epoch, row in enumerate(info["history"], 1)],
        description="Mean losses and throughput per epoch (curves: `dvc plots show`)",
    )
    if params.train.samples:
        create_picture_artifact("training-samples", f"Held-out samples after epoch {info['epochs']}",
                                [(samples_image(TRAINING, info["epochs"]), "Grayscale input | colorized | original")],
                                "The latest epoch's colorization of held-out test images")
    return info


def train_beside_rank_0(params: Params) -> TrainingInfo:
    """What torchrun's other ranks run: the training outside any flow run (rank 0's is the training's one flow run);
    their few log lines go to the console only."""
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        return run_training(params)


def torchrun_command(nproc: int) -> list[str]:
    """This command again, as `nproc` processes under torchrun on this machine, meeting on loopback."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1", f"--nproc-per-node={nproc}"]
    return [*torchrun, "-m", "flows.train", *sys.argv[1:]]


def run(params: Params) -> TrainingInfo:
    """One process of the stage. With train.nproc > 1 and not yet under torchrun (or another launcher that sets
    WORLD_SIZE), it becomes torchrun; one process (train.nproc 1) runs the flow without torchrun's start-up, exactly as
    before; under torchrun, rank 0 runs the flow and the other ranks train beside it."""
    if needs_torchrun(params.train):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, torchrun_command(params.train.nproc))
    return call_flow(train, params) if is_main_process() else train_beside_rank_0(params)


if __name__ == "__main__":
    main("train", run, __doc__)
