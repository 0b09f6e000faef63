"""The training loop on a tiny split: a checkpoint each epoch, an exact resume, and the self-describing generator."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import torch

import pipeline.model.train
from flows.cli import main
from flows.train import run as run_train
from flows.train import run_training
from pipeline.config import parse_params
from pipeline.core.errors import PipelineError
from pipeline.core.shards import ShardWriter
from pipeline.dataset.manifests import SplitFile, write_manifest
from pipeline.dataset.params import Layout
from pipeline.model.colorizer import Colorizer
from pipeline.model.data import Batch
from pipeline.model.devices import resolve_device
from pipeline.model.train import (
    CHECKPOINT_FILE,
    DISCRIMINATOR_WINS,
    GENERATOR_FILE,
    fingerprint,
    training_code,
)
from pipeline.model.trainer import Trainer
from tests.hostile import WritesMarker
from tests.images import colorful, encode


def tiny_split(root: Path, per_split: dict[str, int], layout: Layout = "folders") -> Path:
    """data/split in `layout` with `count` 32×32 pairs per split, named sky_<split><i> (with .png in folders)."""
    rows = []
    for folder in ("train_x", "train_y", "test_x", "test_y") if layout == "folders" else ():
        (root / folder).mkdir(parents=True)
    for split, count in per_split.items():
        images = [colorful(32, 32, seed=100 * (split == "test") + i) for i in range(count)]
        pairs = [(f"sky_{split}{i:02d}", encode(image.convert("L"), "PNG"), encode(image, "PNG")) for i, image in enumerate(images)]
        if layout == "folders":
            for key, gray, color in pairs:
                for which, data in (("x", gray), ("y", color)):
                    (root / f"{split}_{which}" / f"{key}.png").write_bytes(data)
                rows.append({"file": f"{key}.png", "category": "sky", "split": split, "resized_file": f"sky/{key}.png"})
            continue
        with ShardWriter(root / split / "sky-00000.tar") as shard:
            for key, gray, color in pairs:
                offsets = shard.add(key, {"x.png": gray, "y.png": color})
                rows.append({"file": key, "category": "sky", "split": split, "resized_file": f"{key}.png",
                             "shard": f"{split}/sky-00000.tar", "x_offset": offsets["x.png"], "y_offset": offsets["y.png"]})
    write_manifest(root, SplitFile, rows, layout)
    return root


def tiny_params(epochs: int, **train):
    model = {"generator": {"base_filters": 4, "depth": 3}, "discriminator": {"base_filters": 4, "n_layers": 2}}
    return parse_params({"seed": 3, "train": {"epochs": epochs, "batch_size": 4, "crop": 24, "samples": 2, **model, **train}})


@pytest.fixture
def split(tmp_path):
    return tiny_split(tmp_path / "split", {"train": 10, "test": 2})


def test_training_writes_a_generator_colorize_can_load_and_logs_each_epoch(split, tmp_path):
    info = run_training(tiny_params(2), split, tmp_path / "models", tmp_path / "live")
    assert info["epochs"] == 2 and len(info["history"]) == 2
    assert {"loss_d", "loss_g_gan", "loss_g_l1", "images_per_second"} <= set(info["history"][0])
    colorizer = Colorizer.load(tmp_path / "models" / GENERATOR_FILE, device="cpu")
    assert colorizer.image_size == 32 and colorizer.info["epochs"] == 2
    assert colorizer.info["data"] == {"source": "synthetic", "categories": ["sky"], "images": 10, "size": 32}
    assert (tmp_path / "live" / "plots" / "metrics" / "train" / "loss_g_l1.tsv").is_file()
    assert sorted(p.name for p in (tmp_path / "live" / "plots" / "images" / "samples").iterdir()) == ["epoch-001.png", "epoch-002.png"]


RECIPE = {"warmup": 0.34, "decay": 0.67, "ema": 0.9, "discriminator": {"base_filters": 4, "n_layers": 2, "norm": "spectral"}}


class Killed(Exception):
    """Stands for the process being killed right after a checkpoint was written."""


def assert_same_training(a_root: Path, b_root: Path, a: dict, b: dict) -> None:
    """Two runs ended with the same weights and the same per-epoch history (throughput aside)."""
    first = torch.load(a_root / CHECKPOINT_FILE, weights_only=True)
    second = torch.load(b_root / CHECKPOINT_FILE, weights_only=True)
    for part in ("generator", "ema", "discriminator"):
        for name, tensor in first[part].items():
            assert torch.equal(tensor, second[part][name]), (part, name)
    timeless = lambda history: [{k: v for k, v in epoch.items() if k != "images_per_second"} for epoch in history]  # noqa: E731
    assert timeless(a["history"]) == timeless(b["history"])


EVERY_BATCH = 1e-9  # train.checkpoint_minutes: a checkpoint after every batch but an epoch's last


@pytest.mark.parametrize(
    ("checkpoint_minutes", "checkpoints"),
    [(0, [(1, 0)]), (0, [(1, 0), (2, 0)]), (EVERY_BATCH, [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])],
    ids=["in-the-warm-up", "in-the-adversarial-phase", "inside-an-epoch"],  # killed after the last of `checkpoints`
)
def test_a_run_killed_after_a_checkpoint_resumes_from_its_place_to_exactly_the_same_state(split, tmp_path, monkeypatch, checkpoint_minutes, checkpoints):
    params = tiny_params(3, checkpoint_minutes=checkpoint_minutes, **RECIPE)
    straight = run_training(params, split, tmp_path / "straight" / "models", tmp_path / "straight" / "live")
    save, places = pipeline.model.train.save_checkpoint, []

    def save_then_die(path: Path, state: dict) -> None:
        save(path, state)
        places.append((state["epoch"], state["batches"]))  # epochs finished, batches of the next one
        if places[-1] == checkpoints[-1]:
            raise Killed

    resumed = tmp_path / "resumed"
    with monkeypatch.context() as patched:
        patched.setattr(pipeline.model.train, "save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            run_training(params, split, resumed / "models", resumed / "live")
    assert places == checkpoints
    again = run_training(params, split, resumed / "models", resumed / "live")
    assert again["epochs"] == 3
    assert_same_training(tmp_path / "straight" / "models", resumed / "models", straight, again)


def _curve(live: Path, name: str) -> list[list[str]]:
    """The rows of one dvclive curve (step, value), header left out."""
    return [line.split("\t") for line in (live / "plots" / "metrics" / "train" / f"{name}.tsv").read_text().splitlines()[1:]]


def test_a_run_killed_after_writing_its_log_but_before_its_checkpoint_resumes_with_one_point_per_epoch(split, tmp_path, monkeypatch):
    """The checkpoint is the truth: what the killed run logged of the epoch it did not checkpoint is dropped."""
    params, live = tiny_params(3), tmp_path / "live"
    save = pipeline.model.train.save_checkpoint

    def die_before_the_third(path: Path, state: dict) -> None:
        if state["epoch"] == 3:
            raise Killed  # epoch 3's curves and samples are written, its checkpoint is not
        save(path, state)

    with monkeypatch.context() as patched:
        patched.setattr(pipeline.model.train, "save_checkpoint", die_before_the_third)
        with pytest.raises(Killed):
            run_training(params, split, tmp_path / "models", live)
    samples = live / "plots" / "images" / "samples"
    first_samples = (samples / "epoch-001.png").read_bytes()
    assert len(_curve(live, "loss_g_l1")) == 3 and (samples / "epoch-003.png").is_file()
    (live / "metrics.json").write_text("")  # as a kill in the middle of dvclive's rewrite of it leaves it
    with open(live / "plots" / "metrics" / "train" / "loss_d.tsv", "a") as torn:
        torn.write("3\t0.69")  # a row cut short
    (samples / ".epoch-004.png.x.tmp").write_bytes(b"\x89PNG")  # a write cut short

    info = run_training(params, split, tmp_path / "models", live)
    assert info["epochs"] == 3 and len(info["history"]) == 3
    for name in ("loss_g_l1", "loss_d", "test_psnr", "d_accuracy_real"):
        assert [step for step, _ in _curve(live, name)] == ["0", "1", "2"], name
    assert [float(value) for _, value in _curve(live, "loss_g_l1")] == pytest.approx([epoch["loss_g_l1"] for epoch in info["history"]])
    assert json.loads((live / "metrics.json").read_text())["step"] == 2
    assert sorted(path.name for path in samples.iterdir()) == ["epoch-001.png", "epoch-002.png", "epoch-003.png"]
    assert (samples / "epoch-001.png").read_bytes() == first_samples  # kept: it cannot be made again


def test_the_warm_up_trains_the_generator_alone_then_the_adversarial_phase_starts(split, tmp_path):
    history = run_training(tiny_params(3, **RECIPE), split, tmp_path / "models", tmp_path / "live")["history"]
    assert [("loss_d" in epoch, "d_accuracy_real" in epoch, "loss_g_gan" in epoch) for epoch in history] == [
        (False, False, False), (True, True, True), (True, True, True)
    ]
    assert all(0 <= epoch[key] <= 1 for epoch in history[1:] for key in ("d_accuracy_real", "d_accuracy_fake"))


def test_the_saved_generator_is_the_weight_average(split, tmp_path):
    run_training(tiny_params(2, **RECIPE), split, tmp_path / "models", tmp_path / "live")
    checkpoint = torch.load(tmp_path / "models" / CHECKPOINT_FILE, weights_only=True)
    saved = Colorizer.load(tmp_path / "models" / GENERATOR_FILE, device="cpu").net.state_dict()
    assert all(torch.equal(tensor, checkpoint["ema"][name]) for name, tensor in saved.items())
    assert not all(torch.equal(tensor, checkpoint["generator"][name]) for name, tensor in saved.items())


def test_the_weight_average_ramps_up_so_a_short_run_does_not_keep_its_initial_weights():
    trainer = Trainer.create(tiny_params(1, ema=0.999).train, torch.device("cpu"))
    before = [weight.clone() for weight in trainer.ema.parameters()]
    batch = Batch(torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 2, 16, 16) - 0.5)
    trainer.step(batch, trainer.generator, trainer.discriminator)
    decay = 2 / 11  # (1 + steps) / (10 + steps) after the first step, far below 0.999
    for average, start, weight in zip(trainer.ema.parameters(), before, trainer.generator.parameters(), strict=True):
        assert torch.allclose(average, decay * start + (1 - decay) * weight, atol=1e-6)
    assert trainer.steps == 1


def _weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in net.parameters()]


@pytest.mark.parametrize(("running_accuracy", "rests"), [(0.81, True), (0.79, False)])
def test_the_discriminator_rests_while_its_running_accuracy_is_above_the_cap(running_accuracy, rests):
    """The rule itself, with the accuracy given: a training's trajectory would say it only on one machine."""
    torch.manual_seed(0)
    trainer = Trainer.create(tiny_params(1, warmup=0, d_max_accuracy=0.8).train, torch.device("cpu"))
    trainer.d_accuracy = running_accuracy
    before_d, before_g = _weights(trainer.discriminator), _weights(trainer.generator)
    batch = Batch(torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 2, 16, 16) - 0.5)
    losses = trainer.step(batch, trainer.generator, trainer.discriminator)
    unchanged = all(torch.equal(a, b) for a, b in zip(before_d, _weights(trainer.discriminator), strict=True))
    assert unchanged is rests and losses["d_updated"] == (0.0 if rests else 1.0)
    assert not all(torch.equal(a, b) for a, b in zip(before_g, _weights(trainer.generator), strict=True))  # G always steps
    judged = (losses["d_accuracy_real"] + losses["d_accuracy_fake"]) / 2
    assert trainer.d_accuracy == pytest.approx(0.9 * running_accuracy + 0.1 * judged)  # the running accuracy moves on


@pytest.mark.parametrize(("cap", "updated"), [(1.0, 1.0), (0.01, 0.0)])  # the running accuracy starts at 0.5
def test_a_cap_of_1_never_rests_the_discriminator_and_a_cap_near_0_always_does(split, tmp_path, cap, updated):
    history = run_training(tiny_params(3, warmup=0, d_max_accuracy=cap), split, tmp_path / "models", tmp_path / "live")["history"]
    assert [epoch["d_updated"] for epoch in history] == [updated] * 3


def test_learning_rates_fall_linearly_over_the_decay_epochs():
    trainer = Trainer.create(tiny_params(4, lr=1e-3, decay=0.75).train, torch.device("cpu"))
    rates = []
    for _ in range(4):
        trainer.start_epoch()
        rates += [{group["lr"] for optimizer in (trainer.opt_g, trainer.opt_d) for group in optimizer.param_groups}]
        trainer.finish_epoch({})
    assert [rate for [rate] in rates] == pytest.approx([1e-3, 0.75e-3, 0.5e-3, 0.25e-3])


def test_each_epoch_scores_the_held_out_images_against_gray(split, tmp_path):
    history = run_training(tiny_params(1), split, tmp_path / "models", tmp_path / "live")["history"]
    scores = history[0]
    assert scores["test_colorfulness_truth"] > 20 and scores["test_psnr_gray"] > 5
    assert scores["test_psnr"] != scores["test_psnr_gray"] and scores["test_colorfulness"] >= 0
    for name in ("test_psnr", "test_psnr_gray", "test_colorfulness", "d_accuracy_real", "d_accuracy_fake"):
        assert (tmp_path / "live" / "plots" / "metrics" / "train" / f"{name}.tsv").is_file(), name


def test_the_log_warns_when_the_discriminator_wins(split, tmp_path, caplog):
    overpowered = {"lr": 2e-3, "lambda_gan": 1e-6, "warmup": 0, "discriminator": {"base_filters": 16, "n_layers": 2, "norm": "batch"}}  # G ignores D
    with caplog.at_level(logging.WARNING, logger="pipeline.model.train"):
        history = run_training(tiny_params(10, **overpowered), split, tmp_path / "models", tmp_path / "live")["history"]
    wins = [min(epoch["d_accuracy_real"], epoch["d_accuracy_fake"]) > DISCRIMINATOR_WINS for epoch in history]
    warnings = [record.getMessage() for record in caplog.records if "the discriminator wins" in record.getMessage()]
    assert not wins[0] and wins[-1] and len(warnings) == sum(wins)


def test_changed_params_start_afresh_instead_of_resuming(split, tmp_path):
    run_training(tiny_params(1), split, tmp_path / "models", tmp_path / "live")
    info = run_training(tiny_params(1, lr=1e-3), split, tmp_path / "models", tmp_path / "live")
    assert info["epochs"] == 1 and len(info["history"]) == 1



@pytest.mark.parametrize("execution", [{"loader": "stream"}, {"checkpoint_minutes": 1.0}, {"compile": True}])
def test_where_and_how_it_runs_is_not_what_it_is_a_checkpoint_resumes_across_a_change(execution):
    params = tiny_params(2)
    assert fingerprint(params.train, 3, Path("missing")) == fingerprint(tiny_params(2, **execution).train, 3, Path("missing"))
    assert fingerprint(params.train, 3, Path("missing")) != fingerprint(tiny_params(2, lr=1e-3).train, 3, Path("missing"))

def test_a_checkpoint_is_tied_to_all_the_code_the_training_runs():
    """The fingerprint hashes the training's import closure, found from the source: the data order's module too."""
    code = training_code()
    assert {"pipeline/model/train.py", "pipeline/model/trainer.py", "pipeline/model/distributed.py", "pipeline/model/data.py",
            "pipeline/model/networks.py", "pipeline/model/lab.py", "pipeline/model/params.py"} <= set(code)
    assert not any(path.startswith(("flows/", "pipeline/dataset/sources/bing")) for path in code)
    assert all(len(digest) == 64 for digest in code.values())


def test_changed_data_starts_afresh_even_with_the_same_file_names(split, tmp_path):
    before = run_training(tiny_params(1), split, tmp_path / "models", tmp_path / "live")["history"][0]
    colorful(32, 32, seed=99).save(split / "train_y" / "sky_train00.png")  # same names, new bytes
    after = run_training(tiny_params(2), split, tmp_path / "models", tmp_path / "live")["history"]
    assert len(after) == 2 and after[0] != before  # a resume would have kept epoch 1 as it was


def test_lambda_gan_zero_trains_an_l1_only_baseline_without_a_discriminator(split, tmp_path):
    info = run_training(tiny_params(1, lambda_gan=0), split, tmp_path / "models", tmp_path / "live")
    health = {"test_psnr", "test_psnr_gray", "test_colorfulness", "test_colorfulness_truth"}
    assert set(info["history"][0]) == {"loss_g_l1", "images_per_second", *health}
    assert torch.load(tmp_path / "models" / CHECKPOINT_FILE, weights_only=True)["discriminator"] is None



def _checkpoint_that_runs_code(path: Path, marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"fingerprint": "x", "epoch": 1, "payload": WritesMarker(marker)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["runs_code", "truncated", "not_torch"])
def test_a_checkpoint_that_cannot_be_loaded_safely_is_ignored_with_a_warning_and_training_starts_afresh(split, tmp_path, caplog, damage):
    models, marker = tmp_path / "models", tmp_path / "marker"
    run_training(tiny_params(1), split, models, tmp_path / "live")
    checkpoint = models / CHECKPOINT_FILE
    contents = {
        "runs_code": _checkpoint_that_runs_code(checkpoint, marker),
        "truncated": checkpoint.read_bytes()[: checkpoint.stat().st_size // 2],
        "not_torch": b"<html>404</html>",
    }[damage]
    checkpoint.write_bytes(contents)  # as a dvc pull, a shared workspace or a copied folder could deliver it
    with caplog.at_level(logging.WARNING, logger="pipeline.model.train"):
        info = run_training(tiny_params(2), split, models, tmp_path / "live")
    assert not marker.exists()
    assert info["epochs"] == 2 and len(info["history"]) == 2  # from scratch, not from a restored epoch
    warning = next(record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)
    assert warning.startswith(f"train: ignoring {checkpoint}, which cannot be loaded as a checkpoint (") and "training from scratch" in warning
    assert Colorizer.load(models / GENERATOR_FILE, device="cpu").info["epochs"] == 2
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2  # replaced by a sound one


def test_a_checkpoint_whose_contents_do_not_fit_is_ignored_and_the_run_equals_one_without_it(split, tmp_path, caplog):
    clean = run_training(tiny_params(1), split, tmp_path / "clean" / "models", tmp_path / "clean" / "live")
    models = tmp_path / "damaged" / "models"
    models.mkdir(parents=True)
    state = torch.load(tmp_path / "clean" / "models" / CHECKPOINT_FILE, weights_only=True)
    state["generator"] = {"weight": torch.zeros(3)}  # the right fingerprint, the wrong network
    torch.save(state, models / CHECKPOINT_FILE)
    with caplog.at_level(logging.WARNING, logger="pipeline.model.train"):
        damaged = run_training(tiny_params(1), split, models, tmp_path / "damaged" / "live")
    assert any("whose contents do not fit this training" in record.getMessage() for record in caplog.records)
    assert clean["history"][0]["loss_g_l1"] == damaged["history"][0]["loss_g_l1"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tpu", "train.device: 'tpu' is not a device name (use auto, cpu, cuda, cuda:N or mps)"),
        ("cuda:99", "train.device: 'cuda:99': this machine has "),
        ("mps", "train.device: 'mps': Apple's MPS is not available on this machine (use auto or cpu)"),
        ("meta", "train.device: 'meta': not supported (use auto, cpu, cuda, cuda:N or mps)"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line_naming_the_key(name, message):
    if name == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(PipelineError) as info:
        resolve_device(name, "train.device")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_the_train_stage_on_cuda_without_cuda_fails_in_one_line(split, tmp_path, monkeypatch, prefect_api_url):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("train: {device: cuda}\n")
    monkeypatch.setattr("sys.argv", ["python -m flows.train"])
    with pytest.raises(SystemExit) as exit_info:
        main("train", run_train, "train")
    assert exit_info.value.code == "train: error: train.device: 'cuda': this machine has no CUDA device (use auto or cpu)"


def test_sigterm_inside_an_epoch_checkpoints_at_the_next_batch_and_hands_the_signal_on(split, tmp_path, monkeypatch, caplog):
    """As a preempted machine's SIGTERM: the stage's handler (here one that raises) runs once the batch is done and
    its place is checkpointed; the next run continues from there to the end an uninterrupted run reaches."""
    params = tiny_params(2, **RECIPE)  # checkpoints at the end of epochs only, but for the signal
    straight = run_training(params, split, tmp_path / "straight" / "models", tmp_path / "straight" / "live")
    augment, batches = pipeline.model.train.augment, []

    def augment_and_signal(x, y, crop, rng):
        batches.append(len(batches))
        if len(batches) == 5:  # epoch 2's second batch
            os.kill(os.getpid(), signal.SIGTERM)
        return augment(x, y, crop, rng)

    def terminated(signum, frame):
        raise Killed

    resumed = tmp_path / "resumed"
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        with monkeypatch.context() as patched, caplog.at_level(logging.INFO, "pipeline.model.train"):
            patched.setattr(pipeline.model.train, "augment", augment_and_signal)
            with pytest.raises(Killed):
                run_training(params, split, resumed / "models", resumed / "live")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(batches) == 5 and "train: stopping after batch 2 of 3 of epoch 2, which the checkpoint records" in caplog.text
    checkpoint = torch.load(resumed / "models" / CHECKPOINT_FILE, weights_only=True)
    assert (checkpoint["epoch"], checkpoint["batches"]) == (1, 2) and checkpoint["epoch_totals"]["images"] == 8
    with caplog.at_level(logging.INFO, "pipeline.model.train"):
        again = run_training(params, split, resumed / "models", resumed / "live")
    assert "train: resuming after batch 2 of epoch 2 of 2" in caplog.text
    assert_same_training(tmp_path / "straight" / "models", resumed / "models", straight, again)
