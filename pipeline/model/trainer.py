"""One GAN training step and everything it updates: the networks, their optimizers, the losses, the generator's weight
average, the L1 warm-up and the discriminator's running accuracy; its state is what a checkpoint holds."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.model.data import Batch
from pipeline.model.devices import autocast
from pipeline.model.networks import GANLoss, define_discriminator, define_generator
from pipeline.model.params import TrainParams


@dataclass
class Trainer:
    """The networks, their optimizers and losses, and the epoch reached."""

    cfg: TrainParams
    device: torch.device
    generator: nn.Module
    discriminator: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    gan_loss: GANLoss
    ema: nn.Module | None = None  # the generator's exponential moving average (train.ema > 0)
    epoch: int = 0  # epochs finished
    batches: int = 0  # batches of the epoch under way finished (a checkpoint inside an epoch records its place)
    epoch_totals: dict[str, float] = field(default_factory=dict)  # the epoch under way's sums of losses, images, seconds
    steps: int = 0  # optimisation steps of the generator so far
    d_accuracy: float = 0.5  # the discriminator's running accuracy on real and fake pairs
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def create(cls, cfg: TrainParams, device: torch.device) -> Trainer:
        generator = define_generator(cfg.generator).to(device)
        adam = {"lr": cfg.lr, "betas": (cfg.beta1, 0.999)}
        discriminator, opt_d = None, None
        if cfg.lambda_gan > 0:
            discriminator = define_discriminator(cfg.discriminator).to(device)
            opt_d = torch.optim.Adam([{"params": discriminator.parameters(), "lr_scale": 1.0}], **adam)
        if device.type == "cuda" and cfg.mixed_precision:
            generator = generator.to(memory_format=torch.channels_last)
            discriminator = discriminator.to(memory_format=torch.channels_last) if discriminator else None
        opt_g = torch.optim.Adam(_parameter_groups(generator, cfg), **adam)
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

    @property
    def encoder_frozen(self) -> bool:
        """Whether the epoch under way keeps a pretrained encoder's weights as they are (`train.encoder_frozen`)."""
        return self.epoch < self.cfg.frozen_epochs

    def start_epoch(self) -> None:
        """Set the epoch under way's learning rates: `train.lr` (× `train.encoder_lr` for a pretrained encoder), falling
        linearly over the last `train.decay` share of the epochs (as pix2pix); and freeze or unfreeze the encoder."""
        epochs_left = self.cfg.epochs - self.epoch  # counting the one under way
        factor = min(1.0, epochs_left / (self.cfg.decay_epochs + 1))
        for optimizer in (self.opt_g, self.opt_d):
            for group in optimizer.param_groups if optimizer else ():
                group["lr"] = self.cfg.lr * factor * group["lr_scale"]
        for parameter in _pretrained_parameters(self.generator):
            parameter.requires_grad_(not self.encoder_frozen)  # frozen: no gradient is computed through it at all

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

    def autocast(self) -> torch.autocast:
        """Mixed precision as `train.mixed_precision` asks, where it applies (`devices.autocast`)."""
        return autocast(self.device, self.cfg.mixed_precision)

    def mark_place(self, batches: int, epoch_totals: dict[str, float]) -> None:
        """Record how far the epoch under way is (`batches` done, the sums so far), for a checkpoint inside it."""
        self.batches, self.epoch_totals = batches, epoch_totals

    def finish_epoch(self, summary: dict[str, float]) -> None:
        """The epoch under way is done: count it, keep its summary (mean losses, health) in the history."""
        self.epoch, self.history = self.epoch + 1, [*self.history, summary]
        self.batches, self.epoch_totals = 0, {}

    def step(self, batch: Batch, forward_g: nn.Module, forward_d: nn.Module | None) -> dict[str, float]:
        """One optimisation step of D then G (G alone during the warm-up; D rests while its running accuracy is above
        `train.d_max_accuracy`); the losses, D's accuracy on real and fake pairs and whether it stepped, as floats. G's
        step calls a DDP-wrapped D's own module, so that DDP does not expect D's gradients from it."""
        losses: dict[str, float] = {}
        adversarial = forward_d is not None and self.opt_d is not None and self.adversarial
        with self.autocast():
            fake = forward_g(batch.l_norm)
        judge = forward_d.module if isinstance(forward_d, DistributedDataParallel) else forward_d
        if adversarial:
            rest = self.d_accuracy > self.cfg.d_max_accuracy  # the same on every process: accuracies are averaged
            with self.autocast(), torch.set_grad_enabled(not rest):
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
        with self.autocast():
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
            "batches": self.batches,
            "epoch_totals": self.epoch_totals,
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

    def restore(self, state: dict[str, Any], epoch_sums: bool = True) -> None:
        """Continue from a checkpoint's state; `epoch_sums` False on every DDP process but rank 0, which holds the sums
        of the epoch under way over all of them."""
        self.generator.load_state_dict(state["generator"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.discriminator is not None and self.opt_d is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"])
        self.epoch, self.steps, self.history = state["epoch"], state["steps"], state["history"]
        self.batches, self.epoch_totals = state["batches"], state["epoch_totals"]
        if not epoch_sums:
            self.epoch_totals = dict.fromkeys(self.epoch_totals, 0.0)
        self.d_accuracy = state["d_accuracy"]


def _pretrained_parameters(generator: nn.Module) -> list[nn.Parameter]:
    """A generator's pretrained encoder's parameters (none for a generator without one)."""
    return generator.parameter_groups()[0] if hasattr(generator, "parameter_groups") else []


def _parameter_groups(generator: nn.Module, cfg: TrainParams) -> list[dict[str, Any]]:
    """The generator's optimizer groups, each with the share of `train.lr` it trains at (`lr_scale`): a pretrained
    encoder's at `train.encoder_lr`."""
    if not hasattr(generator, "parameter_groups"):
        return [{"params": list(generator.parameters()), "lr_scale": 1.0}]
    pretrained, rest = generator.parameter_groups()
    return [{"params": rest, "lr_scale": 1.0}, {"params": pretrained, "lr_scale": cfg.encoder_lr}]
