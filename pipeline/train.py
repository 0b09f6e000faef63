"""The train stage: a pix2pix-style conditional GAN in CIELAB (L -> ab), resumable from its last epoch."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from dvclive import Live
from PIL import Image
from torch import nn
from tqdm import tqdm

from pipeline import lab, networks
from pipeline.colorizer import pick_device, save_generator
from pipeline.config import Params, Train
from pipeline.fsutil import atomic_write_bytes, read_manifest, sha256_file
from pipeline.images import image_grid
from pipeline.lab import LabNormalization, rgb_to_lab
from pipeline.networks import DiscriminatorConfig, GANLoss, GeneratorConfig, define_discriminator, define_generator

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.pt"
CHECKPOINT_FILE = "checkpoint.pt"
NORMALIZATION = LabNormalization()


@dataclass
class Batch:
    """Normalized L (network input, from the grayscale x) and ab (target, from the color y)."""

    l_norm: torch.Tensor
    ab_norm: torch.Tensor


def load_split(split_root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(x as N×1×H×W uint8, y as N×3×H×W uint8, file names) of one split, in manifest order."""
    manifest = read_manifest(split_root)
    files = list(manifest.loc[manifest["split"] == split, "file"])
    x = np.stack([np.asarray(Image.open(split_root / f"{split}_x" / name).convert("L")) for name in files])
    y = np.stack([np.asarray(Image.open(split_root / f"{split}_y" / name).convert("RGB")) for name in files])
    return torch.from_numpy(x)[:, None], torch.from_numpy(y).permute(0, 3, 1, 2).contiguous(), files


def to_lab_batch(x: torch.Tensor, y: torch.Tensor) -> Batch:
    """uint8 gray x and color y (on any device) to the networks' normalized L and ab."""
    gray = x.float().div(255).expand(-1, 3, -1, -1)
    l_norm = NORMALIZATION.normalize_l(rgb_to_lab(gray)[:, :1])
    _, ab_norm = NORMALIZATION.split(y.float().div(255))
    return Batch(l_norm, ab_norm)


def augment(x: torch.Tensor, y: torch.Tensor, crop: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random square crop for the batch (when `crop` is smaller than the images) and per-image flips."""
    height, width = x.shape[-2:]
    if 0 < crop < min(height, width):
        top = int(torch.randint(height - crop + 1, (1,), generator=rng))
        left = int(torch.randint(width - crop + 1, (1,), generator=rng))
        x, y = x[..., top : top + crop, left : left + crop], y[..., top : top + crop, left : left + crop]
    flip = (torch.rand(x.shape[0], generator=rng) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x), torch.where(flip, y.flip(-1), y)


def fingerprint(params: Params, split_root: Path) -> str:
    """What a checkpoint must match to be resumed: the train params, the seed, every byte of the data, and the
    code that defines the training (a checkpoint made by other code is not continued)."""
    files = sorted(path for path in split_root.rglob("*") if path.is_file())
    data = {str(path.relative_to(split_root)): sha256_file(path) for path in files}
    code = {module.__name__: sha256_file(Path(str(module.__file__))) for module in (sys.modules[__name__], lab, networks)}
    described = {"seed": params.seed, "train": params.train.model_dump(mode="json"), "data": data, "code": code}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


@dataclass
class Trainer:
    """The networks, their optimizers and losses, and the epoch reached."""

    cfg: Train
    device: torch.device
    generator: nn.Module
    discriminator: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    gan_loss: GANLoss
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def create(cls, cfg: Train, device: torch.device) -> Trainer:
        generator = define_generator(GeneratorConfig(**cfg.generator.model_dump())).to(device)
        adam = {"lr": cfg.lr, "betas": (cfg.beta1, 0.999)}
        discriminator, opt_d = None, None
        if cfg.lambda_gan > 0:
            discriminator = define_discriminator(DiscriminatorConfig(**cfg.discriminator.model_dump())).to(device)
            opt_d = torch.optim.Adam(discriminator.parameters(), **adam)
        if device.type == "cuda" and cfg.mixed_precision:
            generator = generator.to(memory_format=torch.channels_last)
            discriminator = discriminator.to(memory_format=torch.channels_last) if discriminator else None
        opt_g = torch.optim.Adam(generator.parameters(), **adam)
        return cls(cfg, device, generator, discriminator, opt_g, opt_d, GANLoss(cfg.gan_mode).to(device))

    def _autocast(self) -> torch.autocast:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and self.cfg.mixed_precision)

    def step(self, batch: Batch, forward_g: nn.Module, forward_d: nn.Module | None) -> dict[str, float]:
        """One optimisation step of D (if any) then G; the losses as floats."""
        losses: dict[str, float] = {}
        with self._autocast():
            fake = forward_g(batch.l_norm)
        if forward_d is not None and self.opt_d is not None:
            with self._autocast():
                real_pairs = torch.cat([batch.l_norm, batch.ab_norm], 1)
                fake_pairs = torch.cat([batch.l_norm, fake.detach()], 1)
                loss_d = 0.5 * (self.gan_loss(forward_d(real_pairs).float(), True) + self.gan_loss(forward_d(fake_pairs).float(), False))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            losses["loss_d"] = loss_d.item()
        with self._autocast():
            loss_l1 = F.l1_loss(fake.float(), batch.ab_norm)
            loss_g = self.cfg.lambda_l1 * loss_l1
            if forward_d is not None:
                loss_gan = self.gan_loss(forward_d(torch.cat([batch.l_norm, fake], 1)).float(), True)
                loss_g = loss_g + self.cfg.lambda_gan * loss_gan
                losses["loss_g_gan"] = loss_gan.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        losses["loss_g_l1"] = loss_l1.item()
        return losses

    def state(self, key: str) -> dict[str, Any]:
        return {
            "fingerprint": key,
            "epoch": self.epoch,
            "history": self.history,
            "train": self.cfg.model_dump(mode="json"),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict() if self.discriminator else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "rng": torch.get_rng_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.discriminator is not None and self.opt_d is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"])
        self.epoch, self.history = state["epoch"], state["history"]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _resumable(path: Path, key: str) -> dict[str, Any] | None:
    """The checkpoint at `path` if it was made with the same params and data, else None."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state.get("fingerprint") == key else None


def _samples(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> Image.Image:
    """Rows of grayscale | colorized | original for a few fixed test images."""
    trainer.generator.eval()
    with torch.no_grad(), trainer._autocast():
        batch = to_lab_batch(x.to(trainer.device), y.to(trainer.device))
        rgb = NORMALIZATION.to_rgb(batch.l_norm, trainer.generator(batch.l_norm).float())
    trainer.generator.train()
    as_image = lambda t: Image.fromarray((t.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8))  # noqa: E731
    rows = [[Image.fromarray(x[i, 0].numpy()), as_image(rgb[i]), as_image(y[i].float() / 255)] for i in range(len(x))]
    return image_grid(rows, cell=96)


def train_model(split_root: Path, models_root: Path, live_dir: Path, params: Params) -> dict[str, Any]:
    """Train (or resume) the colorizer; write models_root/generator.pt and checkpoint.pt; log to live_dir."""
    cfg = params.train
    device = pick_device(cfg.device)
    torch.manual_seed(params.seed)
    x_train, y_train, _ = load_split(split_root, "train")
    x_test, y_test, _ = load_split(split_root, "test")
    key = fingerprint(params, split_root)
    trainer = Trainer.create(cfg, device)
    checkpoint_path = models_root / CHECKPOINT_FILE
    models_root.mkdir(parents=True, exist_ok=True)
    (models_root / GENERATOR_FILE).unlink(missing_ok=True)  # only a finished run leaves a generator
    state = _resumable(checkpoint_path, key)
    if state is not None:
        trainer.restore(state)
        log.info("train: resuming after epoch %d of %d from %s", trainer.epoch, cfg.epochs, checkpoint_path)
    if device.type == "cuda":  # the dataset is small: keep it on the GPU so it never waits for the disk
        x_train, y_train = x_train.to(device), y_train.to(device)
    forward_g = torch.compile(trainer.generator) if cfg.compile else trainer.generator
    forward_d = trainer.discriminator
    if cfg.compile and forward_d is not None:
        forward_d = torch.compile(forward_d)
    count = len(x_train)
    with Live(dir=str(live_dir), resume=state is not None, save_dvc_exp=False, dvcyaml=None) as live:
        while trainer.epoch < cfg.epochs:
            epoch = trainer.epoch + 1
            rng = torch.Generator().manual_seed(params.seed * 100_003 + epoch)  # the epoch's data order and crops
            order = torch.randperm(count, generator=rng)
            totals: dict[str, float] = {}
            started = time.monotonic()
            batches = range(0, count, cfg.batch_size)
            with tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", disable=None, dynamic_ncols=True) as bar:
                for start in bar:
                    index = order[start : start + cfg.batch_size].to(x_train.device)
                    x, y = augment(x_train[index].to(device), y_train[index].to(device), cfg.crop, rng)
                    losses = trainer.step(to_lab_batch(x, y), forward_g, forward_d)
                    for name, value in losses.items():
                        totals[name] = totals.get(name, 0.0) + value * len(index)
                    bar.set_postfix(img_s=f"{(start + len(index)) / (time.monotonic() - started):.1f}", l1=f"{losses['loss_g_l1']:.3f}")
            seconds = time.monotonic() - started
            summary = {name: total / count for name, total in totals.items()} | {"images_per_second": count / seconds}
            trainer.epoch, trainer.history = epoch, [*trainer.history, summary]
            for name, value in summary.items():
                live.log_metric(f"train/{name}", value)
            if cfg.samples:
                live.log_image(f"samples/epoch-{epoch:03d}.png", _samples(trainer, x_test[: cfg.samples], y_test[: cfg.samples]))
            live.next_step()
            save_checkpoint(checkpoint_path, trainer.state(key))
            log.info("train: epoch %d/%d %s", epoch, cfg.epochs, ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    info = {"epochs": trainer.epoch, "history": trainer.history, "train": cfg.model_dump(mode="json"), "seed": params.seed}
    save_generator(models_root / GENERATOR_FILE, trainer.generator, GeneratorConfig(**cfg.generator.model_dump()), NORMALIZATION, int(x_train.shape[-1]), info)
    return info
