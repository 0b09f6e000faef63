"""train: the pix2pix-style GAN colorizer (L -> ab in CIELAB) on data/split; resumes from data/models/checkpoint.pt."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.common import DATA, main
from pipeline.config import Params
from pipeline.train import train_model

MODELS = DATA / "models"
TRAINING_LOG = DATA / "training"


@flow(name="train")
def train(params: Params) -> dict[str, Any]:
    info = train_model(DATA / "split", MODELS, TRAINING_LOG, params)
    create_table_artifact(
        key="training",
        table=[{"epoch": epoch, **{k: round(v, 4) for k, v in row.items()}} for epoch, row in enumerate(info["history"], 1)],
        description="Mean losses and throughput per epoch (curves: `dvc plots show`)",
    )
    return {"epochs": info["epochs"]}


if __name__ == "__main__":
    main("train", train, __doc__)
