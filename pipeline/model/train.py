"""The train stage: trains the colorizer (a pix2pix-style conditional GAN in CIELAB, L -> ab) epoch by epoch, with
per-epoch health scores and dvclive curves, resumable from its last epoch's checkpoint; under torchrun, one
DistributedDataParallel process per device, of which rank 0 writes. The GAN step is trainer.py's, the data data.py's,
the multi-process plumbing distributed.py's."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from pipeline.core.errors import one_line
from pipeline.core.fsutil import atomic_write_bytes, remove_unfinished_writes, sha256_file
from pipeline.core.images import colorfulness, image_grid
from pipeline.core.imports import code_hashes
from pipeline.core.progress import Progress
from pipeline.core.stopping import DeferredStop, deferred_stop
from pipeline.model.colorizer import save_generator
from pipeline.model.data import (
    NORMALIZATION,
    InMemoryPairs,
    SplitPairs,
    StreamedPairs,
    augment,
    augmentation_rng,
    median_ab,
    to_lab_batch,
    training_pairs,
)
from pipeline.model.distributed import (
    World,
    any_process,
    barrier,
    batch_per_process,
    epoch_order,
    parameters_sha256,
    process_group,
    sum_over_processes,
    training_device,
    wrap_for_training,
)
from pipeline.model.lab import to_uint8
from pipeline.model.metrics import capped_psnr, grayscale_baseline
from pipeline.model.params import TrainParams
from pipeline.model.trainer import Trainer
from pipeline.model.training_log import TrainingLog, training_log
from pipeline.model.weights import load_weights
from pipeline.paths import MODEL

log = logging.getLogger(__name__)

GENERATOR_FILE = MODEL.name
CHECKPOINT_FILE = "checkpoint.pt"
HEALTH_IMAGES = 32  # test images scored after every epoch (always the same, spread evenly over the manifest)
DISCRIMINATOR_WINS = 0.95  # accuracy on both real and fake pairs above which the log warns
EXECUTION = {"device", "compile", "loader", "checkpoint_minutes"}  # train params that say where and how it runs: a checkpoint resumes across them


def trained_on(source: str, pairs: SplitPairs) -> dict[str, Any]:
    """What the model learnt from, recorded in generator.pt: the source kind, the categories, the training images and
    their size."""
    return {"source": source, "categories": pairs.categories, "images": len(pairs), "size": pairs.shape[-1]}


def training_code() -> dict[str, str]:
    """The sha256 of every project file the training runs (this module's import closure), by path."""
    return code_hashes(__name__)


def fingerprint(cfg: TrainParams, seed: int, split_root: Path) -> str:
    """What a checkpoint must match to be resumed: the train params (but EXECUTION), the seed, every byte of the data,
    and the code the training runs (a checkpoint made by other code is not continued)."""
    files = sorted(path for path in split_root.rglob("*") if path.is_file())
    data = {str(path.relative_to(split_root)): sha256_file(path) for path in files}
    described = {"seed": seed, "train": cfg.model_dump(mode="json", exclude=EXECUTION), "data": data, "code": training_code()}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


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
    with torch.no_grad(), trainer.autocast():
        batch = to_lab_batch(x.to(trainer.device), y.to(trainer.device))
        rgb = NORMALIZATION.to_rgb(batch.l_norm, net(batch.l_norm).float())
    net.train()
    return to_uint8(rgb)


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


def _train_epoch(
    trainer: Trainer, data: InMemoryPairs | StreamedPairs, order: torch.Tensor, batch_size: int, seed: int,
    forwards: tuple[nn.Module, nn.Module | None], world: World, save: Callable[[], None], stop: DeferredStop,
) -> dict[str, float]:
    """One pass over `order`, from the batch a checkpoint inside the epoch reached; every `train.checkpoint_minutes`,
    and at the batch after a stop signal, a checkpoint of the place reached (`save`, rank 0's), then the signal is
    handed on. The mean losses and the throughput, over all processes."""
    totals = dict(trainer.epoch_totals)
    started, saved = time.monotonic() - totals.pop("seconds", 0.0), time.monotonic()
    epoch = trainer.epoch + 1
    total = -(-len(order) // batch_size)
    with Progress(total, f"train: epoch {epoch}/{trainer.cfg.epochs}", "batch", trainer.batches, quiet=not world.is_main) as progress:
        for batch, (x, y) in enumerate(data.batches(order, batch_size, trainer.batches), trainer.batches):
            rng = augmentation_rng(seed, epoch, world.rank, batch)
            x, y = augment(x.to(trainer.device, non_blocking=True), y.to(trainer.device, non_blocking=True), trainer.cfg.crop, rng)
            losses = trainer.step(to_lab_batch(x, y), *forwards)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value * len(x)
            totals["images"] = totals.get("images", 0.0) + len(x)
            progress.update(img_s=f"{totals['images'] / (time.monotonic() - started):.1f}", l1=f"{losses['loss_g_l1']:.3f}")
            due = 0 < trainer.cfg.checkpoint_minutes * 60 <= time.monotonic() - saved
            stopping, due = any_process([stop.requested, due], world, trainer.device)
            if (stopping or due) and batch + 1 < total:  # at the last batch, the epoch's end checkpoints
                # the sums so far over all processes: a resumed rank 0 starts from them, the others from 0
                sums = sum_over_processes(totals, world, trainer.device)
                trainer.mark_place(batch + 1, sums | {"seconds": time.monotonic() - started})
                save()
                saved = time.monotonic()
                if stopping:
                    if world.is_main:
                        log.info("train: stopping after batch %d of %d of epoch %d, which the checkpoint records", batch + 1, total, epoch)
                    stop.stop()
    seconds = time.monotonic() - started
    totals = sum_over_processes(totals, world, trainer.device)
    images = totals.pop("images")
    return {name: total / images for name, total in totals.items()} | {"images_per_second": images / seconds}


def _publish_epoch(
    curves: TrainingLog, trainer: Trainer, summary: dict[str, float], key: str, checkpoint_path: Path, test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Rank 0's end of an epoch: the health on the held-out images joins the epoch's summary, then the curves and
    samples, then the checkpoint (what a later run trusts); a warning when the discriminator wins."""
    x, y = test
    colorized = _colorize(trainer, x, y)
    scores = health(colorized, y.permute(0, 2, 3, 1).numpy())
    summary = summary | {f"test_{name}": value for name, value in scores.items()}
    trainer.finish_epoch(summary)
    samples = trainer.cfg.samples
    curves.add_epoch(trainer.epoch, summary, _samples(x[:samples], y[:samples], colorized[:samples]) if samples else None)
    save_checkpoint(checkpoint_path, trainer.state(key))
    log.info("train: epoch %d/%d %s", trainer.epoch, trainer.cfg.epochs, ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    if min(summary.get("d_accuracy_real", 0.0), summary.get("d_accuracy_fake", 0.0)) > DISCRIMINATOR_WINS:
        log.warning(
            "train: the discriminator wins (accuracy %.3f on real pairs, %.3f on fakes): its verdicts no longer guide the generator; "
            "see docs/model.md, training health", summary["d_accuracy_real"], summary["d_accuracy_fake"],
        )


class TrainingInfo(TypedDict):
    """What a training returns, and generator.pt keeps as its `info`: the epochs done, each one's mean losses and
    health, the train params, the seed, what the model learnt from (`trained_on`), and the training photos' median ab
    (the tint baseline's colour)."""

    epochs: int
    history: list[dict[str, float]]
    train: dict[str, Any]
    seed: int
    data: dict[str, Any]
    tint_ab: list[float]


@dataclass(frozen=True)
class TrainingRun:
    """What a training reads besides its params: the seed, the cores for loading data, and the source kind the split
    came from (recorded in generator.pt)."""

    seed: int
    workers: int = 1
    source: str = ""


def train_model(split_root: Path, models_root: Path, live_dir: Path, cfg: TrainParams, run: TrainingRun) -> TrainingInfo:
    """Train (or resume) the colorizer; write models_root/generator.pt and checkpoint.pt; log to live_dir. Under
    torchrun with WORLD_SIZE > 1 this is one of the DDP processes, each training on its shard of every global batch."""
    world = World.from_env()
    batch_size = batch_per_process(cfg, world)
    device = training_device(cfg.device, world)
    with process_group(world, device):
        return _train(split_root, models_root, live_dir, cfg, run, world, device, batch_size)


def _train(
    split_root: Path, models_root: Path, live_dir: Path, cfg: TrainParams, run: TrainingRun, world: World, device: torch.device,
    batch_size: int,
) -> TrainingInfo:
    """train_model in this process, once its process group (if any) is set up."""
    torch.manual_seed(run.seed)
    train_pairs, test_pairs = SplitPairs(split_root, "train"), SplitPairs(split_root, "test")
    held_out = torch.linspace(0, len(test_pairs) - 1, min(len(test_pairs), HEALTH_IMAGES)).round().long()  # across categories
    x_test, y_test = test_pairs.stack(held_out.tolist())
    key = fingerprint(cfg, run.seed, split_root)
    trainer = Trainer.create(cfg, device)
    checkpoint_path = models_root / CHECKPOINT_FILE
    if world.is_main:
        models_root.mkdir(parents=True, exist_ok=True)
        (models_root / GENERATOR_FILE).unlink(missing_ok=True)  # only a finished run leaves a generator
        remove_unfinished_writes(models_root)  # what a killed run's checkpoint or generator write left
    state = _resumable(checkpoint_path, key)
    barrier(world)  # every process has read the checkpoint before rank 0 writes the next one
    if state is not None:
        try:
            trainer.restore(state, epoch_sums=world.is_main)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            log.warning("train: ignoring %s, whose contents do not fit this training (%s); training from scratch", checkpoint_path, one_line(str(exc)))
            torch.manual_seed(run.seed)  # the same initial weights as a run that found no checkpoint
            trainer, state = Trainer.create(cfg, device), None
        else:
            if world.is_main:
                place = f"batch {trainer.batches} of epoch {trainer.epoch + 1}" if trainer.batches else f"epoch {trainer.epoch}"
                log.info("train: resuming after %s of %d from %s", place, cfg.epochs, checkpoint_path)
    forwards, wrapped_frozen = None, None
    sampler = DistributedSampler(range(len(train_pairs)), world.world_size, world.rank, seed=run.seed) if world.distributed else None
    with (
        training_pairs(train_pairs, cfg.loader, run.workers, device) as data,
        training_log(live_dir, trainer.history) if world.is_main else nullcontext() as curves,  # None on the other ranks
        deferred_stop() as stop,
    ):
        save = (lambda: save_checkpoint(checkpoint_path, trainer.state(key))) if world.is_main else (lambda: None)
        while trainer.epoch < cfg.epochs:
            order = epoch_order(len(train_pairs), run.seed, trainer.epoch + 1, sampler)
            trainer.start_epoch()
            if forwards is None or wrapped_frozen != trainer.encoder_frozen:  # DDP syncs what was trainable when wrapped
                forwards = (wrap_for_training(trainer.generator, cfg, world, device), wrap_for_training(trainer.discriminator, cfg, world, device))
                wrapped_frozen = trainer.encoder_frozen
            summary = _train_epoch(trainer, data, order, batch_size, run.seed, forwards, world, save, stop)
            if curves is None:
                trainer.finish_epoch(summary)
            else:
                _publish_epoch(curves, trainer, summary, key, checkpoint_path, (x_test, y_test))
            stop.stop()  # a stop signal during the epoch's last batch or its checkpoint
    info = TrainingInfo(
        epochs=trainer.epoch, history=trainer.history, train=cfg.model_dump(mode="json"), seed=run.seed,
        data=trained_on(run.source, train_pairs), tint_ab=list(median_ab(train_pairs)),
    )
    if world.is_main:
        save_generator(models_root / GENERATOR_FILE, trainer.saved_generator, cfg.generator, NORMALIZATION, train_pairs.shape[-1], info)
    if world.distributed:
        digest = parameters_sha256(trainer.saved_generator)
        log.info("train: rank %d of %d finished; generator parameters sha256 %s", world.rank, world.world_size, digest)
    barrier(world)  # generator.pt is in place before any process returns
    return info
