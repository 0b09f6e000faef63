"""The training loop on a tiny split: a checkpoint each epoch, an exact resume, and the self-describing generator."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

from flows.common import main
from flows.train import stage
from pipeline.colorizer import Colorizer
from pipeline.config import parse_params
from pipeline.devices import resolve_device
from pipeline.errors import PipelineError
from pipeline.train import CHECKPOINT_FILE, GENERATOR_FILE, train_model
from tests.hostile import WritesMarker
from tests.images import colorful


def tiny_split(root: Path, per_split: dict[str, int]) -> Path:
    rows = []
    for folder in ("train_x", "train_y", "test_x", "test_y"):
        (root / folder).mkdir(parents=True)
    for split, count in per_split.items():
        for i in range(count):
            name = f"sky_{split}{i:02d}.png"
            image = colorful(32, 32, seed=100 * (split == "test") + i)
            image.save(root / f"{split}_y" / name)
            image.convert("L").save(root / f"{split}_x" / name)
            rows.append({"file": name, "category": "sky", "split": split})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def tiny_params(epochs: int, **train):
    model = {"generator": {"base_filters": 4, "depth": 3}, "discriminator": {"base_filters": 4, "n_layers": 2}}
    return parse_params({"seed": 3, "train": {"epochs": epochs, "batch_size": 4, "crop": 24, "samples": 2, **model, **train}})


@pytest.fixture
def split(tmp_path):
    return tiny_split(tmp_path / "split", {"train": 10, "test": 2})


def test_training_writes_a_generator_colorize_can_load_and_logs_each_epoch(split, tmp_path):
    info = train_model(split, tmp_path / "models", tmp_path / "live", tiny_params(2))
    assert info["epochs"] == 2 and len(info["history"]) == 2
    assert {"loss_d", "loss_g_gan", "loss_g_l1", "images_per_second"} <= set(info["history"][0])
    colorizer = Colorizer.load(tmp_path / "models" / GENERATOR_FILE, device="cpu")
    assert colorizer.image_size == 32 and colorizer.info["epochs"] == 2
    assert colorizer.info["data"] == {"source": "synthetic", "categories": ["sky"], "images": 10, "size": 32}
    assert (tmp_path / "live" / "plots" / "metrics" / "train" / "loss_g_l1.tsv").is_file()
    assert sorted(p.name for p in (tmp_path / "live" / "plots" / "images" / "samples").iterdir()) == ["epoch-001.png", "epoch-002.png"]


def test_an_interrupted_run_resumes_to_exactly_the_same_state(split, tmp_path):
    straight = tmp_path / "straight"
    train_model(split, straight / "models", straight / "live", tiny_params(2))
    resumed = tmp_path / "resumed"
    train_model(split, resumed / "models", resumed / "live", tiny_params(1))
    checkpoint = torch.load(resumed / "models" / CHECKPOINT_FILE, weights_only=True)
    checkpoint["fingerprint"] = torch.load(straight / "models" / CHECKPOINT_FILE, weights_only=True)["fingerprint"]
    torch.save(checkpoint, resumed / "models" / CHECKPOINT_FILE)  # as if the 2-epoch run had been killed after epoch 1
    (resumed / "models" / GENERATOR_FILE).unlink()
    train_model(split, resumed / "models", resumed / "live", tiny_params(2))
    a = torch.load(straight / "models" / CHECKPOINT_FILE, weights_only=True)
    b = torch.load(resumed / "models" / CHECKPOINT_FILE, weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for name, tensor in a["generator"].items():
        assert torch.equal(tensor, b["generator"][name]), name
    assert a["history"][1]["loss_g_l1"] == b["history"][1]["loss_g_l1"]


def test_changed_params_start_afresh_instead_of_resuming(split, tmp_path):
    train_model(split, tmp_path / "models", tmp_path / "live", tiny_params(1))
    info = train_model(split, tmp_path / "models", tmp_path / "live", tiny_params(1, lr=1e-3))
    assert info["epochs"] == 1 and len(info["history"]) == 1


def test_changed_data_starts_afresh_even_with_the_same_file_names(split, tmp_path):
    before = train_model(split, tmp_path / "models", tmp_path / "live", tiny_params(1))["history"][0]
    colorful(32, 32, seed=99).save(split / "train_y" / "sky_train00.png")  # same names, new bytes
    after = train_model(split, tmp_path / "models", tmp_path / "live", tiny_params(2))["history"]
    assert len(after) == 2 and after[0] != before  # a resume would have kept epoch 1 as it was


def test_lambda_gan_zero_trains_an_l1_only_baseline_without_a_discriminator(split, tmp_path):
    info = train_model(split, tmp_path / "models", tmp_path / "live", tiny_params(1, lambda_gan=0))
    assert set(info["history"][0]) == {"loss_g_l1", "images_per_second"}
    assert torch.load(tmp_path / "models" / CHECKPOINT_FILE, weights_only=True)["discriminator"] is None



def _checkpoint_that_runs_code(path: Path, marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"fingerprint": "x", "epoch": 1, "payload": WritesMarker(marker)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["runs_code", "truncated", "not_torch"])
def test_a_checkpoint_that_cannot_be_loaded_safely_is_ignored_with_a_warning_and_training_starts_afresh(split, tmp_path, caplog, damage):
    models, marker = tmp_path / "models", tmp_path / "marker"
    train_model(split, models, tmp_path / "live", tiny_params(1))
    checkpoint = models / CHECKPOINT_FILE
    contents = {
        "runs_code": _checkpoint_that_runs_code(checkpoint, marker),
        "truncated": checkpoint.read_bytes()[: checkpoint.stat().st_size // 2],
        "not_torch": b"<html>404</html>",
    }[damage]
    checkpoint.write_bytes(contents)  # as a dvc pull, a shared workspace or a copied folder could deliver it
    with caplog.at_level(logging.WARNING, logger="pipeline.train"):
        info = train_model(split, models, tmp_path / "live", tiny_params(2))
    assert not marker.exists()
    assert info["epochs"] == 2 and len(info["history"]) == 2  # from scratch, not from a restored epoch
    warning = next(record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)
    assert warning.startswith(f"train: ignoring {checkpoint}, which cannot be loaded as a checkpoint (") and "training from scratch" in warning
    assert Colorizer.load(models / GENERATOR_FILE, device="cpu").info["epochs"] == 2
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2  # replaced by a sound one


def test_a_checkpoint_whose_contents_do_not_fit_is_ignored_and_the_run_equals_one_without_it(split, tmp_path, caplog):
    clean = train_model(split, tmp_path / "clean" / "models", tmp_path / "clean" / "live", tiny_params(1))
    models = tmp_path / "damaged" / "models"
    models.mkdir(parents=True)
    state = torch.load(tmp_path / "clean" / "models" / CHECKPOINT_FILE, weights_only=True)
    state["generator"] = {"weight": torch.zeros(3)}  # the right fingerprint, the wrong network
    torch.save(state, models / CHECKPOINT_FILE)
    with caplog.at_level(logging.WARNING, logger="pipeline.train"):
        damaged = train_model(split, models, tmp_path / "damaged" / "live", tiny_params(1))
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
        main("train", stage, "train")
    assert exit_info.value.code == "train: error: train.device: 'cuda': this machine has no CUDA device (use auto or cpu)"
