"""Training on several processes under torchrun: each process's place, its device and share of the batch, the
process group (NCCL on CUDA, gloo on the CPU), and the collective steps the training loop takes. In a single process
(no torchrun) the process is rank 0 of 1, there is no process group, and the collective steps change nothing."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from pipeline.core.errors import PipelineError
from pipeline.core.parallel import exit_when_orphaned
from pipeline.model.devices import resolve_device
from pipeline.model.params import TrainParams

log = logging.getLogger(__name__)


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


def batch_per_process(cfg: TrainParams, world: World) -> int:
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


def training_device(name: str, world: World) -> torch.device:
    """`train.device`; under DDP, the CUDA device LOCAL_RANK (one process per GPU) or the CPU."""
    device = resolve_device(name, "train.device")
    if not world.distributed:
        return device
    if device.type not in ("cuda", "cpu"):
        raise PipelineError(f"train.nproc > 1 trains on CUDA GPUs (NCCL) or on the CPU (gloo), not on {device.type}")
    return torch.device("cuda", world.local_rank) if device.type == "cuda" else device


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU) for the duration; leave it even on error. The
    process ends as soon as torchrun is gone: torchrun starts each one in a session of its own, which a kill of `dvc
    repro`'s process group does not reach, and they would train on, and write, beside the next run."""
    if not world.distributed:
        yield
        return
    exit_when_orphaned()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def barrier(world: World) -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if world.distributed:
        torch.distributed.barrier()


def sum_over_processes(values: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """Each value summed over all processes (the values themselves in a single process)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return dict(zip(values, tensor.tolist(), strict=True))


def any_process(flags: list[bool], world: World, device: torch.device) -> list[bool]:
    """Each flag, true when it is true on any process (the flags themselves in a single process): what every process
    must decide alike, such as stopping at this step."""
    if not world.distributed:
        return flags
    tensor = torch.tensor(flags, dtype=torch.float32, device=device)
    torch.distributed.all_reduce(tensor, torch.distributed.ReduceOp.MAX)
    return [bool(value) for value in tensor.tolist()]


def parameters_sha256(net: nn.Module) -> str:
    """A digest of a network's parameters: equal on every process when DDP kept them in sync."""
    digest = hashlib.sha256()
    for tensor in net.parameters():
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def wrap_for_training(net: nn.Module | None, cfg: TrainParams, world: World, device: torch.device) -> nn.Module | None:
    """What the training step calls: `net`, compiled with `train.compile`, then wrapped in DDP under torchrun."""
    if net is None:
        return None
    forward = torch.compile(net) if cfg.compile else net
    if not world.distributed:
        return forward
    return DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)


def epoch_order(count: int, seed: int, epoch: int, sampler: DistributedSampler | None) -> torch.Tensor:
    """The training images this process visits in the epoch, in order, the same in every run: all of them in a single
    process, else its DistributedSampler shard (disjoint from the other processes', padded to the same length)."""
    if sampler is None:
        return torch.randperm(count, generator=torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**63))
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler))


def needs_torchrun(cfg: TrainParams) -> bool:
    """Whether this process must start `train.nproc` training processes under torchrun: more than one is asked for and
    no launcher has started them yet (WORLD_SIZE unset). A batch too small to share among them fails here, in one line."""
    if cfg.nproc == 1 or "WORLD_SIZE" in os.environ:
        return False
    batch_per_process(cfg, World(world_size=cfg.nproc))
    return True


def is_main_process() -> bool:
    """Rank 0 under torchrun, or the only process: the one that writes files and reports."""
    return World.from_env().is_main
