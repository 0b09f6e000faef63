"""The training data: a split's (gray x, color y) pairs read by index, served to the training loop in batches from
memory (a split that fits) or streamed by worker processes (memory bounded by the batch and the prefetch, never by the
split); their normalized Lab batches; the augmentation."""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.core.errors import PipelineError, one_line
from pipeline.core.parallel import start_worker
from pipeline.dataset.manifests import MANIFEST, SHARDED_MANIFEST, SplitFile, columns, read_manifest
from pipeline.dataset.split import PairReader
from pipeline.model.lab import LabNormalization, rgb_to_lab

log = logging.getLogger(__name__)

NORMALIZATION = LabNormalization()
MEMORY_CAP = 4 << 30  # bytes: the most a split may take to be held in memory (and at most a quarter of the memory)
PREFETCH = 4  # batches each streaming worker process holds ready
LOAD_PER_PROCESS = 8192  # pairs per process that loads a split into memory: a process takes seconds to start

Pair = tuple[torch.Tensor, torch.Tensor]  # x as N×1×H×W uint8, y as N×3×H×W uint8 (or one image, without N)


@dataclass
class Batch:
    """Normalized L (network input, from the grayscale x) and ab (target, from the color y)."""

    l_norm: torch.Tensor
    ab_norm: torch.Tensor


class SplitPairs(Dataset[Pair]):
    """One split of data/split, in manifest order, in either layout: item i is (x as 1×H×W uint8, y as 3×H×W uint8),
    read from `<split>_x` and `<split>_y`, or from the members of its shard at the manifest's offsets. An image that
    cannot be read, or whose size differs from the first's, is a PipelineError naming it."""

    def __init__(self, split_root: Path, split: str) -> None:
        manifest, layout = read_manifest(split_root, SplitFile)
        rows = manifest[manifest["split"] == split]
        self.root, self.split, self.manifest = split_root, split, split_root / (SHARDED_MANIFEST if layout == "shards" else MANIFEST)
        self.rows = rows[columns(SplitFile, layout)].reset_index(drop=True)
        self.files: list[str] = list(rows["file"])
        self.categories: list[str] = sorted(rows["category"].astype(str).unique())
        self._pairs = PairReader(split_root, layout)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Pair:
        row = next(self.rows.iloc[index : index + 1].itertuples())
        x = self._read(row, "x", "L")
        y = self._read(row, "y", "RGB")
        return torch.from_numpy(x)[None], torch.from_numpy(y).permute(2, 0, 1).contiguous()

    def _read(self, row: Any, which: str, mode: str) -> np.ndarray:
        where = self.root / row.shard / f"{row.file}.{which}.png" if self._pairs.layout == "shards" else self.root / f"{self.split}_{which}" / row.file
        try:
            with Image.open(io.BytesIO(self._pairs.read(row, which))) as image:
                pixels = np.array(image.convert(mode))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise PipelineError(f"{where}: cannot be read as an image ({one_line(str(exc))})") from None
        if "shape" in self.__dict__ and pixels.shape[:2] != self.shape:
            raise PipelineError(f"{where}: {pixels.shape[1]}×{pixels.shape[0]} pixels, unlike the split's {self.shape[1]}×{self.shape[0]}")
        return pixels

    @cached_property
    def shape(self) -> tuple[int, int]:
        """Every image's height and width: the first one's."""
        if not self.files:
            raise PipelineError(f"{self.manifest}: no {self.split} images")
        x, _ = self[0]
        return int(x.shape[-2]), int(x.shape[-1])

    @property
    def nbytes(self) -> int:
        """What the whole split takes as uint8 tensors."""
        height, width = self.shape
        return len(self) * height * width * 4

    def stack(self, indices: Sequence[int]) -> Pair:
        """A few pairs as one batch, read in this process."""
        xs, ys = zip(*(self[int(i)] for i in indices), strict=True)
        return torch.stack(xs), torch.stack(ys)


TINT_SAMPLE = 256  # training images, spread evenly over the split, whose median ab is the tint baseline's colour


def median_ab(pairs: SplitPairs) -> tuple[float, float]:
    """The median a and b (CIELAB) over every pixel of up to TINT_SAMPLE color targets spread over `pairs`: the one
    colour of the tint baseline, recorded with the model."""
    picks = torch.linspace(0, len(pairs) - 1, min(len(pairs), TINT_SAMPLE)).round().long().unique()
    ab = torch.cat([NORMALIZATION.denormalize_ab(NORMALIZATION.split(pairs[int(i)][1][None].float() / 255)[1]).flatten(2) for i in picks], dim=2)
    a, b = ab[0].median(dim=1).values.tolist()
    return round(a, 3), round(b, 3)


class _Batches:
    """A batch sampler: `order` in slices of `batch_size`, from the `start`-th; `set` before each pass."""

    def __init__(self) -> None:
        self.set(torch.arange(0), 1, 0)

    def set(self, order: torch.Tensor, batch_size: int, start: int) -> _Batches:
        self.order, self.batch_size, self.start = order, batch_size, start
        return self

    def __len__(self) -> int:
        return max(0, -(-len(self.order) // self.batch_size) - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for begin in range(self.start * self.batch_size, len(self.order), self.batch_size):
            yield self.order[begin : begin + self.batch_size].tolist()


def _start_loader_worker(owner: int, worker_id: int) -> None:
    """A loader process's start: signals are its owner's to handle; it ends with its owner."""
    start_worker(owner)


def _loader(pairs: SplitPairs, batches: _Batches, workers: int, pin_memory: bool) -> DataLoader[Pair]:
    """The batches of `batches`, decoded by `workers` processes (in this one when 0), at most PREFETCH per process ahead.
    The processes are spawned, not forked (a fork of a process with Prefect's threads fails as it exits), once: they
    persist from pass to pass."""
    processes = {
        "worker_init_fn": functools.partial(_start_loader_worker, os.getpid()), "multiprocessing_context": "spawn",
        "prefetch_factor": PREFETCH, "persistent_workers": True,
    } if workers else {}
    # a generator of its own leaves the global random numbers (the networks' dropout) alone
    return DataLoader(pairs, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory, generator=torch.Generator(), **processes)


def _one_line_errors(loader: DataLoader[Pair]) -> Iterator[Pair]:
    """The loader's batches; a PipelineError in a worker comes back as its one line (DataLoader wraps it in the worker's
    traceback)."""
    try:
        yield from loader
    except PipelineError as exc:
        raise PipelineError(str(exc).rstrip().rsplit("PipelineError: ", 1)[-1]) from None


class InMemoryPairs:
    """The whole split, loaded once as two uint8 tensors (onto the GPU when training there: it never waits for the
    disk), by up to `workers` processes, one per LOAD_PER_PROCESS pairs; in this process when that makes fewer than 2 (one
    process reads no faster than this one, and starts in seconds)."""

    def __init__(self, pairs: SplitPairs, workers: int, device: torch.device) -> None:
        height, width = pairs.shape
        self.x = torch.empty((len(pairs), 1, height, width), dtype=torch.uint8)
        self.y = torch.empty((len(pairs), 3, height, width), dtype=torch.uint8)
        batches = _Batches().set(torch.arange(len(pairs)), 256, 0)
        processes = min(workers, len(pairs) // LOAD_PER_PROCESS)
        loader = _loader(pairs, batches, processes if processes >= 2 else 0, pin_memory=False)
        done = 0
        for x, y in tqdm(_one_line_errors(loader), total=len(batches), desc="loading the split", unit="batch", leave=False, disable=None):
            self.x[done : done + len(x)], self.y[done : done + len(y)] = x, y
            done += len(x)
        if device.type == "cuda":
            self.x, self.y = self.x.to(device), self.y.to(device)

    def batches(self, order: torch.Tensor, batch_size: int, start: int) -> Iterator[Pair]:
        for index in _Batches().set(order.to(self.x.device), batch_size, start):
            yield self.x[index], self.y[index]


class StreamedPairs:
    """The split read from disk batch by batch by `workers` processes, which last as long as this does."""

    def __init__(self, pairs: SplitPairs, workers: int, device: torch.device) -> None:
        self.sampler = _Batches()
        self.loader = _loader(pairs, self.sampler, workers, pin_memory=device.type == "cuda")

    def batches(self, order: torch.Tensor, batch_size: int, start: int) -> Iterator[Pair]:
        self.sampler.set(order, batch_size, start)
        return _one_line_errors(self.loader)

    def close(self) -> None:
        """End the processes now, even while a pass is under way (DataLoader has no public way: its iterator's)."""
        if self.loader._iterator is not None:
            self.loader._iterator._shutdown_workers()


def memory_budget(device: torch.device) -> int:
    """The most bytes a split may take to be held in memory: MEMORY_CAP, at most a quarter of the RAM (and of the
    GPU's memory when training there)."""
    budget = min(MEMORY_CAP, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)
    if device.type == "cuda":
        budget = min(budget, torch.cuda.get_device_properties(device).total_memory // 4)
    return budget


@contextmanager
def training_pairs(pairs: SplitPairs, loader: str, workers: int, device: torch.device) -> Iterator[InMemoryPairs | StreamedPairs]:
    """Where the training batches come from (`train.loader`), for the duration: `memory`, `stream`, or `auto`: memory
    when the split takes at most memory_budget(), else stream; the choice is logged. Loader processes end with it."""
    size, budget = pairs.nbytes, memory_budget(device)
    in_memory = loader == "memory" or (loader == "auto" and size <= budget)
    reason = f"train.loader={loader}" if loader != "auto" else f"{'within' if in_memory else 'over'} the {budget / 2**30:.1f} GiB budget"
    if in_memory:
        log.info("train: %d training pairs (%.2f GiB) held in memory (%s)", len(pairs), size / 2**30, reason)
        yield InMemoryPairs(pairs, workers, device)
        return
    log.info("train: %d training pairs (%.2f GiB) streamed from disk by %d processes (%s)", len(pairs), size / 2**30, workers, reason)
    streamed = StreamedPairs(pairs, workers, device)
    try:
        yield streamed
    finally:
        streamed.close()


def to_lab_batch(x: torch.Tensor, y: torch.Tensor) -> Batch:
    """uint8 gray x and color y (on any device) to the networks' normalized L and ab."""
    gray = x.float().div(255).expand(-1, 3, -1, -1)
    l_norm = NORMALIZATION.normalize_l(rgb_to_lab(gray)[:, :1])
    _, ab_norm = NORMALIZATION.split(y.float().div(255))
    return Batch(l_norm, ab_norm)


def augmentation_rng(seed: int, epoch: int, rank: int, batch: int) -> torch.Generator:
    """The random numbers of one batch's augmentation, from its place alone: a run resumed in the middle of an epoch
    draws what an uninterrupted one does."""
    return torch.Generator().manual_seed((((seed * 1_000_003 + epoch) * 1_000_003 + rank) * 1_000_003 + batch) % 2**63)


def augment(x: torch.Tensor, y: torch.Tensor, crop: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random square crop for the batch (when `crop` is smaller than the images) and per-image flips."""
    height, width = x.shape[-2:]
    if 0 < crop < min(height, width):
        top = int(torch.randint(height - crop + 1, (1,), generator=rng))
        left = int(torch.randint(width - crop + 1, (1,), generator=rng))
        x, y = x[..., top : top + crop, left : left + crop], y[..., top : top + crop, left : left + crop]
    flip = (torch.rand(x.shape[0], generator=rng) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x), torch.where(flip, y.flip(-1), y)
