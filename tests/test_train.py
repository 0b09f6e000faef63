"""The training loop on a tiny split: a checkpoint each epoch, an exact resume, and the self-describing generator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.colorizer import Colorizer
from pipeline.config import parse_params
from pipeline.train import CHECKPOINT_FILE, GENERATOR_FILE, train_model
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
    assert (tmp_path / "live" / "plots" / "metrics" / "train" / "loss_g_l1.tsv").is_file()
    assert sorted(p.name for p in (tmp_path / "live" / "plots" / "images" / "samples").iterdir()) == ["epoch-001.png", "epoch-002.png"]


def test_an_interrupted_run_resumes_to_exactly_the_same_state(split, tmp_path):
    straight = tmp_path / "straight"
    train_model(split, straight / "models", straight / "live", tiny_params(2))
    resumed = tmp_path / "resumed"
    train_model(split, resumed / "models", resumed / "live", tiny_params(1))
    checkpoint = torch.load(resumed / "models" / CHECKPOINT_FILE, weights_only=False)
    checkpoint["fingerprint"] = torch.load(straight / "models" / CHECKPOINT_FILE, weights_only=False)["fingerprint"]
    torch.save(checkpoint, resumed / "models" / CHECKPOINT_FILE)  # as if the 2-epoch run had been killed after epoch 1
    (resumed / "models" / GENERATOR_FILE).unlink()
    train_model(split, resumed / "models", resumed / "live", tiny_params(2))
    a = torch.load(straight / "models" / CHECKPOINT_FILE, weights_only=False)
    b = torch.load(resumed / "models" / CHECKPOINT_FILE, weights_only=False)
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
    assert torch.load(tmp_path / "models" / CHECKPOINT_FILE, weights_only=False)["discriminator"] is None
