"""Training under torchrun: two gloo processes on the CPU train one generator with DistributedDataParallel, each on its
own shard of every epoch, and only rank 0 runs the Prefect flow and writes the model, the checkpoint and the logs.

Run as a module (`python -m torch.distributed.run ... -m tests.model.test_train_ddp <folder>`), this file is one of those
processes."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import pipeline.model.train
from flows.train import run_training
from pipeline.config import load_params
from pipeline.core.errors import PipelineError
from pipeline.model.colorizer import Colorizer
from pipeline.model.data import SplitPairs
from pipeline.model.distributed import World, parameters_sha256
from pipeline.model.train import CHECKPOINT_FILE, GENERATOR_FILE
from pipeline.testing.kills import RUN_TOKEN, processes_of
from tests.model.test_train import RECIPE, assert_same_training, tiny_params, tiny_split

pytestmark = pytest.mark.slow  # torchrun processes

REPO = Path(__file__).resolve().parents[2]
EPOCHS, TRAIN_IMAGES = 2, 10


@dataclass
class Recording:
    """What pipeline.model.train trained on (file names, batch by batch), what `probe` said at each batch, and what it logged."""

    batches: list[list[str]] = field(default_factory=list)
    probed: set[Any] = field(default_factory=set)
    log: list[str] = field(default_factory=list)


class _Messages(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.INFO)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def recording(split: Path, probe: Callable[[], Any] = lambda: None) -> Iterator[Recording]:
    """Record the training of the images in `split` by this process."""
    pairs = SplitPairs(split, "train")
    name_of = {pairs[i][0].numpy().tobytes(): name for i, name in enumerate(pairs.files)}
    seen = Recording()
    augment = pipeline.model.train.augment

    def recording_augment(x: torch.Tensor, y: torch.Tensor, crop: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        seen.batches.append([name_of[image.numpy().tobytes()] for image in x])
        seen.probed.add(probe())
        return augment(x, y, crop, rng)

    logger, handler = logging.getLogger("pipeline.model.train"), _Messages(seen.log)
    level = logger.level
    pipeline.model.train.augment = recording_augment
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        pipeline.model.train.augment = augment
        logger.removeHandler(handler)
        logger.setLevel(level)


SIGTERM_AT = "sigterm-at-batch"  # a file in the run's folder: rank 0 sends torchrun SIGTERM as it starts that batch


def record_one_rank(root: Path) -> None:
    """One of torchrun's processes: train on root/split into root/models and root/live; record it in root/rank<N>.json."""
    signal_at, batches = int((root / SIGTERM_AT).read_text()) if (root / SIGTERM_AT).exists() else 0, itertools.count(1)

    def preempt() -> None:  # as a cloud scheduler does: SIGTERM to the launcher, which passes it on to every process
        if next(batches) == signal_at and World.from_env().is_main:
            os.kill(os.getppid(), signal.SIGTERM)
            held = signal.getsignal(signal.SIGTERM).__self__  # the training's DeferredStop
            deadline = time.monotonic() + 30  # on a busy machine torchrun may pass it on after this batch's step
            while not held.requested and time.monotonic() < deadline:
                time.sleep(0.01)

    with recording(root / "split", preempt) as seen:
        run_training(load_params(root / "params.yaml"), root / "split", root / "models", root / "live")
    (root / f"rank{World.from_env().rank}.json").write_text(json.dumps({"batches": seen.batches, "log": seen.log}))


def _torchrun(root: Path, **env: str) -> list[str]:
    """The command and environment that run this module as 2 processes on root/split, meeting on loopback."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1", "--nproc-per-node=2"]
    loopback = {"GLOO_SOCKET_IFNAME": "lo0" if sys.platform == "darwin" else "lo"}
    return [*torchrun, "-m", "tests.model.test_train_ddp", str(root)], {**os.environ, **loopback, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **env}


def _train_on_two_processes(root: Path, epochs: int, **train: Any) -> subprocess.CompletedProcess[str]:
    """A split of TRAIN_IMAGES under root, trained on by 2 processes (global batch 4)."""
    if not (root / "split").exists():
        tiny_split(root / "split", {"train": TRAIN_IMAGES, "test": 2})
    params = tiny_params(epochs, nproc=2, **train).model_copy(update={"workers": 1})
    (root / "params.yaml").write_text(json.dumps(params.model_dump(mode="json")))
    command, env = _torchrun(root)
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("loader", "layout"), [("memory", "folders"), ("stream", "folders"), ("stream", "shards")])
def test_two_processes_train_one_generator_each_on_its_own_shard_and_only_rank_0_writes(tmp_path, loader, layout):
    tiny_split(tmp_path / "split", {"train": TRAIN_IMAGES, "test": 2}, layout)
    result = _train_on_two_processes(tmp_path, EPOCHS, loader=loader)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]

    # each rank does its half of every global batch of 4, on its own shard of the epoch's images
    assert [[len(batch) for batch in rank["batches"]] for rank in ranks] == [[2, 2, 1] * EPOCHS] * 2
    shards = [[sum(rank["batches"][3 * epoch : 3 * epoch + 3], []) for epoch in range(EPOCHS)] for rank in ranks]
    for epoch in range(EPOCHS):
        first, second = set(shards[0][epoch]), set(shards[1][epoch])
        assert len(first) == len(second) == TRAIN_IMAGES // 2 and not first & second
        assert first | second == set(SplitPairs(tmp_path / "split", "train").files) and len(first | second) == TRAIN_IMAGES
    assert shards[0][0] != shards[0][1]  # the sampler reshuffles every epoch

    # the same weights on both ranks, and rank 0 saved them
    digests = [[line.split()[-1] for line in rank["log"] if "generator parameters sha256" in line] for rank in ranks]
    generator = Colorizer.load(tmp_path / "models" / GENERATOR_FILE, device="cpu")
    assert digests == [[parameters_sha256(generator.net)]] * 2
    checkpoint = torch.load(tmp_path / "models" / CHECKPOINT_FILE, weights_only=False)
    assert generator.info["epochs"] == checkpoint["epoch"] == EPOCHS and len(checkpoint["history"]) == EPOCHS

    # only rank 0 logged: one row per epoch, one sample image per epoch, its epoch lines only
    assert list(pd.read_csv(tmp_path / "live/plots/metrics/train/loss_g_l1.tsv", sep="\t")["step"]) == list(range(EPOCHS))
    samples = sorted(p.name for p in (tmp_path / "live/plots/images/samples").iterdir())
    assert samples == [f"epoch-{epoch:03d}.png" for epoch in range(1, EPOCHS + 1)]
    assert [sum(line.startswith("train: epoch") for line in rank["log"]) for rank in ranks] == [EPOCHS, 0]


def test_the_training_processes_end_soon_after_torchrun_is_killed(tmp_path):
    """torchrun starts each process in a session of its own: a kill of torchrun (or of dvc repro's process group) must
    not leave them training on, beside the next run."""
    tiny_split(tmp_path / "split", {"train": TRAIN_IMAGES, "test": 2})
    (tmp_path / "params.yaml").write_text(json.dumps(tiny_params(10_000, nproc=2).model_dump(mode="json")))
    token = uuid.uuid4().hex
    command, env = _torchrun(tmp_path, **{RUN_TOKEN: token})
    agent = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "models" / CHECKPOINT_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    ranks = {pid for pid, command in processes_of(token).items() if "tests.model.test_train_ddp" in command and pid != agent.pid}
    assert len(ranks) >= 2 and agent.poll() is None  # training, both ranks
    agent.kill()
    agent.wait(timeout=30)
    deadline = time.monotonic() + 5
    while set(processes_of(token)) & ranks and time.monotonic() < deadline:
        time.sleep(0.05)
    left = set(processes_of(token)) & ranks
    for pid in left:  # a failure leaves nothing training on
        os.kill(pid, signal.SIGKILL)
    assert not left


def test_sigterm_to_torchrun_inside_an_epoch_checkpoints_the_place_every_process_reached_and_the_next_run_ends_alike(tmp_path):
    straight = _train_on_two_processes(tmp_path / "straight", EPOCHS, **RECIPE)
    assert straight.returncode == 0, straight.stderr[-3000:]
    preempted = tmp_path / "preempted"
    tiny_split(preempted / "split", {"train": TRAIN_IMAGES, "test": 2})
    (preempted / SIGTERM_AT).write_text("5")  # epoch 2's second batch of 3
    stopped = _train_on_two_processes(preempted, EPOCHS, **RECIPE)
    checkpoint = torch.load(preempted / "models" / CHECKPOINT_FILE, weights_only=True)
    assert stopped.returncode != 0 and (checkpoint["epoch"], checkpoint["batches"]) == (1, 2), stopped.stderr[-3000:]
    assert checkpoint["epoch_totals"]["images"] == 8  # both processes' images of the 2 batches
    (preempted / SIGTERM_AT).unlink()
    resumed = _train_on_two_processes(preempted, EPOCHS, **RECIPE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ranks = [json.loads((preempted / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(rank["batches"]) for rank in ranks] == [1, 1]  # epoch 2's last batch, on each process
    assert "train: resuming after batch 2 of epoch 2 of 2" in "\n".join(ranks[0]["log"])
    assert_same_training(tmp_path / "straight" / "models", preempted / "models", *[torch.load(root / "models" / CHECKPOINT_FILE, weights_only=True)
                                                                               for root in (tmp_path / "straight", preempted)])


def test_the_stage_trains_without_prefect_on_ranks_other_than_0_and_leaves_the_writing_to_rank_0(tmp_path, monkeypatch):
    tiny_split(tmp_path / "data" / "split", {"train": 4, "test": 2})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANK", "1")  # as torchrun's second process (in a world of one, so without a process group)
    from prefect.context import FlowRunContext  # here, not above: torchrun's processes load this module and need no Prefect

    from flows.train import run as run_train

    with recording(tmp_path / "data" / "split", probe=lambda: FlowRunContext.get() is not None) as seen:
        run_train(tiny_params(1))
    assert seen.probed == {False} and len(seen.batches) == 1
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["split"]


def test_the_stage_with_nproc_above_1_becomes_torchrun_on_loopback(monkeypatch):
    from flows.train import run as run_train

    def execv(path: str, argv: list[str]) -> None:
        raise SystemExit(argv)

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(sys, "argv", ["flows/train.py", "--params", "other.yaml"])
    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(SystemExit) as replaced:
        run_train(tiny_params(1, nproc=3))
    assert replaced.value.code == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1", "--nproc-per-node=3",
        "-m", "flows.train", "--params", "other.yaml",
    ]


@pytest.mark.parametrize(
    ("world_size", "train", "error"),
    [
        (4, {"nproc": 4, "batch_size": 2}, r"train\.batch_size \(2\) is smaller than the number of training processes \(4"),
        (2, {"nproc": 1}, r"train\.nproc is 1 but 2 training processes were started"),
    ],
)
def test_a_batch_smaller_than_the_processes_or_another_number_of_them_is_refused_before_training(world_size, train, error, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    with pytest.raises(PipelineError, match=error):
        run_training(tiny_params(1, **train), tmp_path / "split", tmp_path / "models", tmp_path / "live")
    assert not (tmp_path / "models").exists()


if __name__ == "__main__":
    record_one_rank(Path(sys.argv[1]))
