"""The train stage: a pix2pix-style conditional GAN in CIELAB (L -> ab), resumable from its last epoch; under torchrun,
one DistributedDataParallel process per device (NCCL on CUDA, gloo on the CPU) of which rank 0 writes."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from dvclive import Live
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from pipeline.config import Params, Train
from pipeline.core.errors import PipelineError, one_line
from pipeline.core.fsutil import atomic_write_bytes, read_manifest, sha256_file
from pipeline.core.images import colorfulness, image_grid
from pipeline.model import lab, networks
from pipeline.model.colorizer import save_generator
from pipeline.model.devices import resolve_device
from pipeline.model.lab import LabNormalization, rgb_to_lab
from pipeline.model.metrics import capped_psnr, grayscale_baseline
from pipeline.model.networks import DiscriminatorConfig, GANLoss, GeneratorConfig, define_discriminator, define_generator
from pipeline.model.weights import load_weights

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.pt"
CHECKPOINT_FILE = "checkpoint.pt"
NORMALIZATION = LabNormalization()
HEALTH_IMAGES = 32  # test images scored after every epoch (always the same, spread evenly over the manifest)
DISCRIMINATOR_WINS = 0.95  # accuracy on both real and fake pairs above which the log warns


@dataclass(frozen=True)
class World:
    """This process's place among torchrun's processes (from its environment): rank 0 of 1 without torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, logs and progress bars."""
        return self.rank == 0


def batch_per_process(cfg: Train, world: World) -> int:
    """Each process's share of `train.batch_size`, which stays the global batch so that results stay comparable;
    refused unless `train.nproc` processes were started."""
    if world.world_size != cfg.nproc:
        raise PipelineError(
            f"train.nproc is {cfg.nproc} but {world.world_size} training processes were started: "
            "run `python -m flows.train`, which starts train.nproc of them"
        )
    if cfg.batch_size < world.world_size:
        raise PipelineError(
            f"train.batch_size ({cfg.batch_size}) is smaller than the number of training processes ({world.world_size}, "
            "train.nproc): each process needs at least one image per step"
        )
    share = cfg.batch_size // world.world_size
    if world.is_main and share * world.world_size != cfg.batch_size:
        log.warning("train: the global batch is %d, not %d: train.batch_size is not a multiple of train.nproc", share * world.world_size, cfg.batch_size)
    return share


def _device(name: str, world: World) -> torch.device:
    """`train.device`; under DDP, the CUDA device LOCAL_RANK (one process per GPU) or the CPU."""
    device = resolve_device(name, "train.device")
    if not world.distributed:
        return device
    if device.type not in ("cuda", "cpu"):
        raise PipelineError(f"train.nproc > 1 trains on CUDA GPUs (NCCL) or on the CPU (gloo), not on {device.type}")
    return torch.device("cuda", world.local_rank) if device.type == "cuda" else device


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU) for the duration; leave it even on error."""
    if not world.distributed:
        yield
        return
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def _barrier(world: World) -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if world.distributed:
        torch.distributed.barrier()


def _sum_over_processes(values: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """Each value summed over all processes (the values themselves in a single process)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return dict(zip(values, tensor.tolist(), strict=True))


def parameters_sha256(net: nn.Module) -> str:
    """A digest of a network's parameters: equal on every process when DDP kept them in sync."""
    digest = hashlib.sha256()
    for tensor in net.parameters():
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


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


def trained_on(params: Params, split_root: Path, x_train: torch.Tensor) -> dict[str, Any]:
    """What the model learnt from, recorded in generator.pt: the source kind, the categories, the training images and
    their size."""
    manifest = read_manifest(split_root)
    categories = sorted(manifest.loc[manifest["split"] == "train", "category"].astype(str).unique())
    return {"source": params.source.kind, "categories": categories, "images": len(x_train), "size": int(x_train.shape[-1])}


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
    ema: nn.Module | None = None  # the generator's exponential moving average (train.ema > 0)
    epoch: int = 0
    steps: int = 0  # optimisation steps of the generator so far
    d_accuracy: float = 0.5  # the discriminator's running accuracy on real and fake pairs
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
        ema = copy.deepcopy(generator).requires_grad_(False) if cfg.ema > 0 else None
        return cls(cfg, device, generator, discriminator, opt_g, opt_d, GANLoss(cfg.gan_mode).to(device), ema)

    @property
    def saved_generator(self) -> nn.Module:
        """What generator.pt holds: the weight average when there is one, else the generator itself."""
        return self.ema if self.ema is not None else self.generator

    @property
    def adversarial(self) -> bool:
        """Whether the epoch under way is past the L1 warm-up (`train.warmup`) and has a discriminator to train against."""
        return self.discriminator is not None and self.epoch >= self.cfg.warmup_epochs

    def set_learning_rates(self) -> None:
        """`train.lr` for the epoch under way, falling linearly over the last `train.decay` share of the epochs (as pix2pix)."""
        epochs_left = self.cfg.epochs - self.epoch  # counting the one under way
        factor = min(1.0, epochs_left / (self.cfg.decay_epochs + 1))
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups if optimizer else ():
                group["lr"] = self.cfg.lr * factor

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the weight average towards the generator's weights; its batch-norm statistics are the generator's. The
        decay ramps up to `train.ema` as (1 + steps) / (10 + steps), so that a short run does not average in its
        random initial weights."""
        if self.ema is None:
            return
        decay = min(self.cfg.ema, (1 + self.steps) / (10 + self.steps))
        for average, weight in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
            average.lerp_(weight, 1 - decay)
        for average, buffer in zip(self.ema.buffers(), self.generator.buffers(), strict=True):
            average.copy_(buffer)

    def _autocast(self) -> torch.autocast:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and self.cfg.mixed_precision)

    def step(self, batch: Batch, forward_g: nn.Module, forward_d: nn.Module | None) -> dict[str, float]:
        """One optimisation step of D then G (G alone during the warm-up; D rests while its running accuracy is above
        `train.d_max_accuracy`); the losses, D's accuracy on real and fake pairs and whether it stepped, as floats. G's
        step calls a DDP-wrapped D's own module, so that DDP does not expect D's gradients from it."""
        losses: dict[str, float] = {}
        adversarial = forward_d is not None and self.opt_d is not None and self.adversarial
        with self._autocast():
            fake = forward_g(batch.l_norm)
        judge = forward_d.module if isinstance(forward_d, DistributedDataParallel) else forward_d
        if adversarial:
            rest = self.d_accuracy > self.cfg.d_max_accuracy  # the same on every process: accuracies are averaged
            with self._autocast(), torch.set_grad_enabled(not rest):
                real_logits = (judge if rest else forward_d)(torch.cat([batch.l_norm, batch.ab_norm], 1)).float()
                fake_logits = (judge if rest else forward_d)(torch.cat([batch.l_norm, fake.detach()], 1)).float()
                loss_d = 0.5 * (self.gan_loss(real_logits, True) + self.gan_loss(fake_logits, False))
            if not rest:
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_d.step()
            accuracy = torch.stack([self.gan_loss.judged_real(real_logits).float().mean(), (~self.gan_loss.judged_real(fake_logits)).float().mean()])
            if torch.distributed.is_initialized():
                torch.distributed.all_reduce(accuracy)
                accuracy /= torch.distributed.get_world_size()
            self.d_accuracy = 0.9 * self.d_accuracy + 0.1 * float(accuracy.mean())
            losses["d_accuracy_real"], losses["d_accuracy_fake"] = accuracy.tolist()
            losses["loss_d"], losses["d_updated"] = loss_d.item(), float(not rest)
        with self._autocast():
            loss_l1 = F.l1_loss(fake.float(), batch.ab_norm)
            loss_g = self.cfg.lambda_l1 * loss_l1
            if adversarial:
                loss_gan = self.gan_loss(judge(torch.cat([batch.l_norm, fake], 1)).float(), True)
                loss_g = loss_g + self.cfg.lambda_gan * loss_gan
                losses["loss_g_gan"] = loss_gan.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.steps += 1
        self.update_ema()
        losses["loss_g_l1"] = loss_l1.item()
        return losses

    def state(self, key: str) -> dict[str, Any]:
        return {
            "fingerprint": key,
            "epoch": self.epoch,
            "steps": self.steps,
            "d_accuracy": self.d_accuracy,
            "history": self.history,
            "train": self.cfg.model_dump(mode="json"),
            "generator": self.generator.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "discriminator": self.discriminator.state_dict() if self.discriminator else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "rng": torch.get_rng_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.discriminator is not None and self.opt_d is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"])
        self.epoch, self.steps, self.history = state["epoch"], state["steps"], state["history"]
        self.d_accuracy = state["d_accuracy"]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _resumable(path: Path, key: str) -> dict[str, Any] | None:
    """The checkpoint at `path` if it was made with the same params and data, else None. It is loaded as weights only
    (tensors, dicts, lists, numbers: a pickle that would run code is refused); one that cannot be loaded is ignored,
    with a warning, so that training starts from scratch instead of failing every run."""
    if not path.is_file():
        return None
    try:
        state = load_weights(path)
    except (OSError, ValueError) as exc:
        log.warning("train: ignoring %s, which cannot be loaded as a checkpoint (%s); training from scratch", path, exc)
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == key else None


def _colorize(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The saved generator's colorizations of test images, in eval mode, as N×H×W×3 uint8."""
    net = trainer.saved_generator
    net.eval()
    with torch.no_grad(), trainer._autocast():
        batch = to_lab_batch(x.to(trainer.device), y.to(trainer.device))
        rgb = NORMALIZATION.to_rgb(batch.l_norm, net(batch.l_norm).float())
    net.train()
    return (rgb.permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)


def _samples(x: torch.Tensor, y: torch.Tensor, colorized: np.ndarray) -> Image.Image:
    """Rows of grayscale | colorized | original for a few fixed test images."""
    truths = y.permute(0, 2, 3, 1).numpy()
    rows = [[Image.fromarray(x[i, 0].numpy()), Image.fromarray(colorized[i]), Image.fromarray(truths[i])] for i in range(len(x))]
    return image_grid(rows, cell=96)


def health(colorized: np.ndarray, truths: np.ndarray) -> dict[str, float]:
    """Mean PSNR and colorfulness of colorizations (N×H×W×3 uint8) next to the grayscale baseline's PSNR and the truth's
    colorfulness: a model that stops beating gray, or turns sepia, shows here."""
    grays = [grayscale_baseline(truth) for truth in truths]
    return {
        "psnr": float(np.mean([capped_psnr(out, truth) for out, truth in zip(colorized, truths, strict=True)])),
        "psnr_gray": float(np.mean([capped_psnr(gray, truth) for gray, truth in zip(grays, truths, strict=True)])),
        "colorfulness": float(np.mean([colorfulness(out) for out in colorized])),
        "colorfulness_truth": float(np.mean([colorfulness(truth) for truth in truths])),
    }


def _forward(net: nn.Module | None, cfg: Train, world: World, device: torch.device) -> nn.Module | None:
    """What the training step calls: `net`, compiled with `train.compile`, then wrapped in DDP under torchrun."""
    if net is None:
        return None
    forward = torch.compile(net) if cfg.compile else net
    if not world.distributed:
        return forward
    return DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)


def _epoch_order(count: int, epoch: int, rng: torch.Generator, sampler: DistributedSampler | None) -> torch.Tensor:
    """The training images this process visits in the epoch, in order: all of them in a single process, else its
    DistributedSampler shard (disjoint from the other processes', padded to the same length)."""
    if sampler is None:
        return torch.randperm(count, generator=rng)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler))


def _train_epoch(
    trainer: Trainer, data: tuple[torch.Tensor, torch.Tensor], order: torch.Tensor, batch_size: int, rng: torch.Generator,
    forwards: tuple[nn.Module, nn.Module | None], world: World,
) -> dict[str, float]:
    """One pass over `order`; the mean losses and the throughput, over all processes."""
    x_train, y_train = data
    totals: dict[str, float] = {}
    seen = 0
    started = time.monotonic()
    batches = range(0, len(order), batch_size)
    desc = f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}"
    with tqdm(batches, desc=desc, unit="batch", disable=None if world.is_main else True, dynamic_ncols=True) as bar:
        for start in bar:
            index = order[start : start + batch_size].to(x_train.device)
            x, y = augment(x_train[index].to(trainer.device), y_train[index].to(trainer.device), trainer.cfg.crop, rng)
            losses = trainer.step(to_lab_batch(x, y), *forwards)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value * len(index)
            seen += len(index)
            bar.set_postfix(img_s=f"{seen / (time.monotonic() - started):.1f}", l1=f"{losses['loss_g_l1']:.3f}")
    seconds = time.monotonic() - started
    totals = _sum_over_processes(totals | {"images": seen}, world, trainer.device)
    images = totals.pop("images")
    return {name: total / images for name, total in totals.items()} | {"images_per_second": images / seconds}


def _publish_epoch(live: Live, trainer: Trainer, key: str, checkpoint_path: Path, test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Rank 0's end of an epoch: the health on the held-out images, the dvclive metrics and samples, then the
    checkpoint; a warning when the discriminator wins."""
    x, y = test
    colorized = _colorize(trainer, x, y)
    scores = health(colorized, y.permute(0, 2, 3, 1).numpy())
    trainer.history[-1] = summary = trainer.history[-1] | {f"test_{name}": value for name, value in scores.items()}
    for name, value in summary.items():
        live.log_metric(f"train/{name}", value)
    if trainer.cfg.samples:
        samples = trainer.cfg.samples
        live.log_image(f"samples/epoch-{trainer.epoch:03d}.png", _samples(x[:samples], y[:samples], colorized[:samples]))
    live.next_step()
    save_checkpoint(checkpoint_path, trainer.state(key))
    log.info("train: epoch %d/%d %s", trainer.epoch, trainer.cfg.epochs, ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    if min(summary.get("d_accuracy_real", 0.0), summary.get("d_accuracy_fake", 0.0)) > DISCRIMINATOR_WINS:
        log.warning(
            "train: the discriminator wins (accuracy %.3f on real pairs, %.3f on fakes): its verdicts no longer guide the generator; "
            "see the README's training health section", summary["d_accuracy_real"], summary["d_accuracy_fake"],
        )


def train_model(split_root: Path, models_root: Path, live_dir: Path, params: Params) -> dict[str, Any]:
    """Train (or resume) the colorizer; write models_root/generator.pt and checkpoint.pt; log to live_dir. Under
    torchrun with WORLD_SIZE > 1 this is one of the DDP processes, each training on its shard of every global batch."""
    world = World.from_env()
    batch_size = batch_per_process(params.train, world)
    device = _device(params.train.device, world)
    with process_group(world, device):
        return _train(split_root, models_root, live_dir, params, world, device, batch_size)


def _train(
    split_root: Path, models_root: Path, live_dir: Path, params: Params, world: World, device: torch.device, batch_size: int
) -> dict[str, Any]:
    """train_model in this process, once its process group (if any) is set up."""
    cfg = params.train
    torch.manual_seed(params.seed)
    x_train, y_train, _ = load_split(split_root, "train")
    x_test, y_test, _ = load_split(split_root, "test")
    held_out = torch.linspace(0, len(x_test) - 1, min(len(x_test), HEALTH_IMAGES)).round().long()  # across categories
    x_test, y_test = x_test[held_out], y_test[held_out]
    key = fingerprint(params, split_root)
    trainer = Trainer.create(cfg, device)
    checkpoint_path = models_root / CHECKPOINT_FILE
    if world.is_main:
        models_root.mkdir(parents=True, exist_ok=True)
        (models_root / GENERATOR_FILE).unlink(missing_ok=True)  # only a finished run leaves a generator
    state = _resumable(checkpoint_path, key)
    _barrier(world)  # every process has read the checkpoint before rank 0 writes the next one
    if state is not None:
        try:
            trainer.restore(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            log.warning("train: ignoring %s, whose contents do not fit this training (%s); training from scratch", checkpoint_path, one_line(str(exc)))
            torch.manual_seed(params.seed)  # the same initial weights as a run that found no checkpoint
            trainer, state = Trainer.create(cfg, device), None
        else:
            if world.is_main:
                log.info("train: resuming after epoch %d of %d from %s", trainer.epoch, cfg.epochs, checkpoint_path)
    if device.type == "cuda":  # the dataset is small: keep it on the GPU so it never waits for the disk
        x_train, y_train = x_train.to(device), y_train.to(device)
    forwards = (_forward(trainer.generator, cfg, world, device), _forward(trainer.discriminator, cfg, world, device))
    sampler = DistributedSampler(range(len(x_train)), world.world_size, world.rank, seed=params.seed) if world.distributed else None
    curves = Live(dir=str(live_dir), resume=state is not None, save_dvc_exp=False, dvcyaml=None) if world.is_main else nullcontext()
    with curves as live:  # rank 0's dvclive; None on the other ranks
        while trainer.epoch < cfg.epochs:
            epoch = trainer.epoch + 1
            # the epoch's data order (single process), crops and flips; per rank under DDP, rank 0's as in a single process
            rng = torch.Generator().manual_seed(params.seed * 100_003 + epoch + 1_000_003 * world.rank)
            order = _epoch_order(len(x_train), epoch, rng, sampler)
            trainer.set_learning_rates()
            summary = _train_epoch(trainer, (x_train, y_train), order, batch_size, rng, forwards, world)
            trainer.epoch, trainer.history = epoch, [*trainer.history, summary]
            if live is not None:
                _publish_epoch(live, trainer, key, checkpoint_path, (x_test, y_test))
    info = {
        "epochs": trainer.epoch, "history": trainer.history, "train": cfg.model_dump(mode="json"), "seed": params.seed,
        "data": trained_on(params, split_root, x_train),
    }
    if world.is_main:
        save_generator(models_root / GENERATOR_FILE, trainer.saved_generator, GeneratorConfig(**cfg.generator.model_dump()), NORMALIZATION, int(x_train.shape[-1]), info)
    if world.distributed:
        digest = parameters_sha256(trainer.saved_generator)
        log.info("train: rank %d of %d finished; generator parameters sha256 %s", world.rank, world.world_size, digest)
    _barrier(world)  # generator.pt is in place before any process returns
    return info
