"""The training data: pairs read by index, served from memory or streamed by worker processes, the same batches either
way; a bad file is one line naming it."""

from __future__ import annotations

import logging
import multiprocessing

import numpy as np
import pytest
import torch

import pipeline.model.data
from flows.train import run_training
from pipeline.core.errors import PipelineError
from pipeline.model.data import SplitPairs, training_pairs
from pipeline.model.train import CHECKPOINT_FILE
from tests.images import colorful
from tests.model.test_train import tiny_params, tiny_split

CPU = torch.device("cpu")


@pytest.fixture
def split(tmp_path):
    return tiny_split(tmp_path / "split", {"train": 10, "test": 2})


@pytest.fixture(params=["folders", "shards"])
def any_split(tmp_path, request):
    return tiny_split(tmp_path / "split", {"train": 10, "test": 2}, request.param)


def test_pairs_are_gray_and_color_uint8_in_manifest_order_in_either_layout(any_split):
    pairs = SplitPairs(any_split, "train")
    x, y = pairs[3]
    assert pairs.files[3].startswith("sky_train03") and len(pairs) == 10 and pairs.categories == ["sky"]
    assert torch.equal(y, torch.from_numpy(np.array(colorful(32, 32, seed=3))).permute(2, 0, 1))
    assert (x.dtype, x.shape, y.dtype, y.shape) == (torch.uint8, (1, 32, 32), torch.uint8, (3, 32, 32))
    assert pairs.shape == (32, 32) and pairs.nbytes == 10 * 32 * 32 * 4


@pytest.mark.parametrize(("loader", "workers"), [("memory", 1), ("stream", 1), ("stream", 2)])
def test_memory_and_streaming_serve_the_same_batches_in_the_order_given(any_split, loader, workers):
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    pairs = SplitPairs(any_split, "train")
    expected = [pairs.stack(order[i : i + 4].tolist()) for i in (4, 8)]  # from the second batch on
    with training_pairs(pairs, loader, workers, CPU) as data:
        for _ in range(2):  # two passes: streaming processes persist between them
            got = list(data.batches(order, 4, start=1))
            assert len(got) == 2 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, expected, strict=True))


def test_leaving_a_stream_in_the_middle_of_a_pass_ends_its_processes_at_once(split):
    """StreamedPairs.close relies on DataLoader's iterator (`_iterator._shutdown_workers`: no public way ends persistent
    workers while a pass is under way); a PyTorch without them fails here."""
    before = set(multiprocessing.active_children())
    with training_pairs(SplitPairs(split, "train"), "stream", 2, CPU) as data:
        batches = data.batches(torch.arange(10), 2, start=0)
        next(batches)
        started = set(multiprocessing.active_children()) - before
        assert len(started) == 2
    for process in started:
        process.join(timeout=10)
    assert not [process for process in started if process.is_alive()] and batches is not None  # still referenced


def test_auto_streams_a_split_over_the_memory_budget_and_says_so(split, monkeypatch, caplog):
    monkeypatch.setattr(pipeline.model.data, "MEMORY_CAP", 10 * 32 * 32 * 4 - 1)
    with caplog.at_level(logging.INFO, "pipeline.model.data"), training_pairs(SplitPairs(split, "train"), "auto", 1, CPU) as data:
        assert isinstance(data, pipeline.model.data.StreamedPairs)
    assert "streamed from disk by 1 processes (over the 0.0 GiB budget)" in caplog.text


def test_training_from_a_stream_ends_where_training_from_memory_does(split, tmp_path):
    runs = {}
    for loader in ("memory", "stream"):
        params = tiny_params(2, loader=loader).model_copy(update={"workers": 2})
        run_training(params, split, tmp_path / loader / "models", tmp_path / loader / "live")
        runs[loader] = torch.load(tmp_path / loader / "models" / CHECKPOINT_FILE, weights_only=True)
    for name, tensor in runs["memory"]["generator"].items():
        assert torch.equal(tensor, runs["stream"]["generator"][name]), name


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("damage", ["truncated", "other size"])
def test_a_bad_image_in_the_stream_is_one_line_naming_it(split, workers, damage):
    bad = split / "train_y" / "sky_train07.png"
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:60])
    else:
        from PIL import Image

        Image.new("RGB", (16, 32)).save(bad)
    with training_pairs(SplitPairs(split, "train"), "stream", workers, CPU) as data, pytest.raises(PipelineError) as error:
        list(data.batches(torch.arange(10), 4, 0))
    assert str(error.value).startswith(str(bad)) and "\n" not in str(error.value)
    assert ("cannot be read as an image" if damage == "truncated" else "16×32 pixels, unlike the split's 32×32") in str(error.value)
