"""The cifar10 source on a tiny cifar-10-batches-py that the test writes in CIFAR's own pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from flows.cli import main
from flows.scrape import run as run_scrape
from pipeline.config import ParamsError, parse_params
from pipeline.core.errors import PipelineError
from pipeline.dataset.sources.cifar10 import CLASSES, training_set
from tests.hostile import WritesMarker
from tests.stages import scrape_with

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
    scrape_with(chosen, tmp_path / "raw")
    manifest = pd.read_csv(tmp_path / "raw" / "manifest.csv")
    assert manifest.groupby("category").size().to_dict() == {"airplane": 4, "automobile": 4}
    for row in manifest.itertuples():
        index = int(row.source_url.rsplit("/", 1)[1])
        assert index % PER_BATCH % 3 == CLASSES.index(row.category)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "raw" / row.file)), images[index])


def test_a_name_that_is_not_a_cifar_class_is_a_clear_error(tmp_path):
    write_cifar(tmp_path / "cifar")
    training_set.cache_clear()
    with pytest.raises(PipelineError, match="'cats' is not a CIFAR-10 class"):
        scrape_with(params(tmp_path / "cifar", categories=["cats"]), tmp_path / "raw")


def test_a_missing_dataset_is_a_params_error_unless_download_is_allowed(tmp_path):
    with pytest.raises(ParamsError, match="source.cifar10.root: .* has no cifar-10-batches-py"):
        params(tmp_path)
    with pytest.raises(ParamsError, match="source.cifar10.root: required"):
        parse_params({"source": {"kind": "cifar10"}})
    assert params(tmp_path, cifar10={"root": str(tmp_path), "download": True}).source.cifar10.download



@pytest.mark.parametrize("protocol", [2, 5])
def test_official_style_batches_are_read_at_any_pickle_protocol(tmp_path, protocol):
    images = write_cifar(tmp_path / "cifar")
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    for batch in range(5):  # as CIFAR's own files: bytes keys (Python 2 strings), written at this protocol
        entry = pickle.loads((folder / f"data_batch_{batch + 1}").read_bytes())
        (folder / f"data_batch_{batch + 1}").write_bytes(pickle.dumps({key.encode(): value for key, value in entry.items()}, protocol=protocol))
    training_set.cache_clear()
    loaded, labels, classes = training_set(tmp_path / "cifar", False)
    assert np.array_equal(loaded, images) and classes == CLASSES and labels.tolist()[:4] == [0, 1, 2, 0]


def test_a_batch_that_would_run_code_is_refused_by_name_and_runs_nothing(tmp_path, monkeypatch, prefect_api_url):
    write_cifar(tmp_path / "cifar")
    marker = tmp_path / "marker"
    batch = tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({"data": WritesMarker(marker), "labels": []}))
    training_set.cache_clear()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    Path("params.yaml").write_text(yaml.safe_dump({"source": {"kind": "cifar10", "categories": ["airplane"], "per_category": 2,
                                                              "cifar10": {"root": str(tmp_path / "cifar")}}}))
    monkeypatch.setattr("sys.argv", ["python -m flows.scrape"])
    with pytest.raises(SystemExit) as exit_info:
        main("scrape", run_scrape, "scrape")
    assert exit_info.value.code == f"scrape: error: {batch}: not a CIFAR-10 batch (UnpicklingError: refers to pathlib.Path.touch, which a CIFAR-10 batch never does)"
    assert not marker.exists()
    assert not Path("data/raw").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<html>not a pickle</html>", "not a CIFAR-10 batch (UnpicklingError"),
        (pickle.dumps([1, 2, 3]), "holds a list, not a dict"),
        (pickle.dumps({"data": np.zeros((2, 5), np.uint8), "labels": [0, 1]}), "'data' is not an N×3072 uint8 array"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}), "'labels' is not a list of 2 class numbers"),
        (b"", "not a CIFAR-10 batch (EOFError"),
    ],
)
def test_a_file_that_is_not_a_cifar_batch_is_one_line_naming_it(tmp_path, content, reason):
    write_cifar(tmp_path / "cifar")
    batch = tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(content)
    training_set.cache_clear()
    with pytest.raises(PipelineError) as info:
        scrape_with(params(tmp_path / "cifar"), tmp_path / "raw")
    assert str(info.value).startswith(f"{batch}: ") and reason in str(info.value) and "\n" not in str(info.value)
