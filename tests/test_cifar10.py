"""The cifar10 source on a tiny cifar-10-batches-py that the test writes in CIFAR's own pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.config import ParamsError, parse_params
from pipeline.errors import PipelineError
from pipeline.scrape import plan_jobs, run_job, write_raw_manifest
from pipeline.sources.cifar10 import CLASSES, training_set

PER_BATCH = 6  # images per data batch; labels cycle through the first three classes


def write_cifar(root: Path) -> np.ndarray:
    """cifar-10-batches-py with 5 tiny training batches, a test batch and batches.meta; returns the training images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5 * PER_BATCH, 32, 32, 3), dtype=np.uint8)
    for batch in range(5):
        chunk = images[batch * PER_BATCH : (batch + 1) * PER_BATCH]
        entry = {"data": chunk.transpose(0, 3, 1, 2).reshape(PER_BATCH, 3072), "labels": [i % 3 for i in range(PER_BATCH)]}
        (folder / f"data_batch_{batch + 1}").write_bytes(pickle.dumps(entry))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": images[:2].transpose(0, 3, 1, 2).reshape(2, 3072), "labels": [0, 1]}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}))
    return images


def params(root: Path, **source):
    return parse_params({"source": {"kind": "cifar10", "categories": ["automobile", "airplane"], "per_category": 4,
                                    "cifar10": {"root": str(root)}, **source}})


def test_images_of_the_chosen_classes_are_saved_as_pngs_with_their_index(tmp_path):
    images = write_cifar(tmp_path / "cifar")
    training_set.cache_clear()
    chosen = params(tmp_path / "cifar")
    rows = [row for job in plan_jobs(chosen) for row in run_job(chosen, job, tmp_path / "raw")]
    write_raw_manifest(tmp_path / "raw", rows)
    manifest = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert manifest.groupby("category").size().to_dict() == {"airplane": 4, "automobile": 4}
    for row in rows:
        index = int(row.source_url.rsplit("/", 1)[1])
        assert index % PER_BATCH % 3 == CLASSES.index(row.category)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "raw" / row.file)), images[index])


def test_a_name_that_is_not_a_cifar_class_is_a_clear_error(tmp_path):
    write_cifar(tmp_path / "cifar")
    training_set.cache_clear()
    with pytest.raises(PipelineError, match="'cats' is not a CIFAR-10 class"):
        plan_jobs(params(tmp_path / "cifar", categories=["cats"]))


def test_a_missing_dataset_is_a_params_error_unless_download_is_allowed(tmp_path):
    with pytest.raises(ParamsError, match="source.cifar10.root: .* has no cifar-10-batches-py"):
        params(tmp_path)
    with pytest.raises(ParamsError, match="source.cifar10.root: required"):
        parse_params({"source": {"kind": "cifar10"}})
    assert params(tmp_path, cifar10={"root": str(tmp_path), "download": True}).source.cifar10.download
