"""The `train` section of params.yaml, with the networks' own params: a leaf, so that the networks (and the
`colorize` command that rebuilds them from a model file) load no other part of the pipeline."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from pipeline.core.schema import LocalPath, StrictModel


class GeneratorParams(StrictModel):
    name: Literal["unet", "encoder_unet"] = "unet"  # encoder_unet: a U-Net on a pretrained ImageNet encoder
    base_filters: Annotated[int, Field(ge=1)] = 16
    depth: Annotated[int, Field(ge=2, le=8)] = 5  # unet
    norm: Literal["batch", "instance"] = "batch"
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5  # unet
    upsample: Literal["transpose", "resize"] = "transpose"  # unet
    encoder: Literal["efficientnet_lite0"] = "efficientnet_lite0"  # encoder_unet: weights from its pip package
    encoder_scale: Annotated[float, Field(ge=1, le=4)] = 2.0  # encoder_unet: the encoder sees the image this much larger


class DiscriminatorParams(StrictModel):
    name: Literal["patchgan"] = "patchgan"
    base_filters: Annotated[int, Field(ge=1)] = 16
    n_layers: Annotated[int, Field(ge=1, le=5)] = 2
    norm: Literal["batch", "instance", "spectral"] = "spectral"


class TrainParams(StrictModel):
    epochs: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 16
    crop: Annotated[int, Field(ge=0)] = 128  # random square crops of this side (0: whole images)
    device: str = "auto"  # auto = CUDA, then MPS, then CPU
    lr: Annotated[float, Field(gt=0)] = 2e-4
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.5
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    lambda_gan: Annotated[float, Field(ge=0)] = 1.0  # 0: an L1-only baseline, no discriminator
    lambda_l1: Annotated[float, Field(ge=0)] = 100.0
    warmup: Annotated[float, Field(ge=0, le=1)] = 0.25  # share of the epochs that train the generator on L1 alone, first
    decay: Annotated[float, Field(ge=0, le=1)] = 0.0  # share of the epochs, last, over which the learning rates fall to 0
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.999  # decay of the generator's weight average that is saved (0: none)
    d_max_accuracy: Annotated[float, Field(gt=0, le=1)] = 1.0  # D skips its step while its running accuracy is above
    mixed_precision: bool = True  # bf16 autocast and channels_last, on CUDA only
    compile: bool = False  # torch.compile the networks
    samples: Annotated[int, Field(ge=0)] = 4  # test images colorized after each epoch, logged with dvclive
    nproc: Annotated[int, Field(ge=1)] = 1  # torchrun processes (one per GPU): DistributedDataParallel when > 1
    loader: Literal["auto", "memory", "stream"] = "auto"  # where batches come from; auto: memory when the split fits
    checkpoint_minutes: Annotated[float, Field(ge=0)] = 10.0  # between checkpoints inside an epoch (0: at its end only)
    encoder_frozen: Annotated[float, Field(ge=0, le=1)] = 1.0  # share of the epochs, first, with a pretrained encoder frozen
    encoder_lr: Annotated[float, Field(gt=0, le=1)] = 0.1  # a pretrained encoder's learning rate once unfrozen, × lr
    generator: GeneratorParams = GeneratorParams()
    discriminator: DiscriminatorParams = DiscriminatorParams()

    @property
    def warmup_epochs(self) -> int:
        return int(self.warmup * self.epochs)

    @property
    def frozen_epochs(self) -> int:
        return math.ceil(self.encoder_frozen * self.epochs)

    @property
    def decay_epochs(self) -> int:
        return int(self.decay * self.epochs)


class EvaluateParams(StrictModel):
    """The `evaluate` section: folders of photos of other collections that evaluate also scores the model on."""

    collections: dict[str, LocalPath] = {}  # name -> a folder of photos (sub-folders too), none by default
    size: Annotated[int, Field(ge=16, le=4096)] = 128  # each photo is scored as a size×size center crop
    max_photos: Annotated[int, Field(ge=1)] = 500  # per collection: this many, drawn by a hash of their names

    @field_validator("collections")
    @classmethod
    def _plain_names(cls, collections: dict[str, Path]) -> dict[str, Path]:
        for name in collections:
            if not re.fullmatch(r"[a-z0-9_]{1,40}", name):
                raise ValueError(f"collection name {name!r}: use 1 to 40 lowercase letters, digits or '_'")
        return collections
