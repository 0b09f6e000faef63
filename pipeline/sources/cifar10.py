"""The `cifar10` source: CIFAR-10 training images of the chosen classes, read through torchvision's CIFAR10."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets import CIFAR10

from pipeline.errors import PipelineError
from pipeline.sources.base import RawFile, save_raw

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _LocalCIFAR10(CIFAR10):
    """torchvision's CIFAR10, also accepting batch files whose checksums differ from the official ones (a
    subset or a re-pack of `cifar-10-batches-py`); a download is still checked against the archive's MD5."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


@lru_cache(maxsize=2)
def training_set(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images N×32×32×3 uint8, labels, class names) of the training batches under root/cifar-10-batches-py."""
    try:
        dataset = _LocalCIFAR10(str(root), train=True, download=download)
    except RuntimeError as exc:
        hint = "" if download else " (set source.cifar10.download: true to download it)"
        raise PipelineError(f"source.cifar10.root: no readable cifar-10-batches-py in {root}: {exc}{hint}") from None
    return dataset.data, np.asarray(dataset.targets), tuple(dataset.classes)


def class_indexes(root: Path, download: bool, category: str, count: int) -> list[int]:
    """The first `count` training-set indexes of the class named `category`."""
    _, labels, classes = training_set(root, download)
    if category not in classes:
        raise PipelineError(f"source.categories: {category!r} is not a CIFAR-10 class ({', '.join(classes)})")
    return [int(i) for i in np.flatnonzero(labels == classes.index(category))[:count]]


def save_images(category: str, root: Path, download: bool, indexes: list[int], raw_root: Path) -> list[RawFile]:
    """Each training image as a PNG under raw_root/<category>/, with `cifar10://train/<index>` as its source."""
    images, _, _ = training_set(root, download)
    rows = []
    for index in indexes:
        encoded = io.BytesIO()
        Image.fromarray(images[index]).save(encoded, "PNG")
        rows.append(save_raw(raw_root, category, f"cifar10_{index:05d}.png", encoded.getvalue(), "cifar10", f"cifar10://train/{index}"))
    return rows
