"""The `cifar10` source: CIFAR-10 training images of the chosen classes, from a `cifar-10-batches-py` folder.

The batches are Python pickles. They are read with an unpickler that can only build what a CIFAR batch holds
(dicts, lists, strings, bytes, numbers and numpy arrays), so a file that is not a CIFAR batch never runs code:
it is refused with a one-line error that names it. A download (`source.cifar10.download`) goes through
torchvision and is checked against the archive's official MD5.
"""

from __future__ import annotations

import codecs
import io
import pickle
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.core.errors import PipelineError
from pipeline.core.parallel import batched
from pipeline.dataset.manifests import RawFile
from pipeline.dataset.sources.base import RawOutput, Scraped, Source, Unit
from pipeline.dataset.sources.params import CIFAR10_FOLDER, Cifar10Params

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
META = "batches.meta"
MAX_BATCH_BYTES = 128 * 1024 * 1024  # an official batch is 31 MB
_IMAGE_VALUES = 32 * 32 * 3

# What a CIFAR batch's pickle may refer to: numpy's array and dtype reconstructors (under NumPy 1 and 2 names),
# and the codec Python 3 uses to pickle bytes at protocol 2. Nothing else is ever imported or called.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's _reconstruct, in whichever module this NumPy keeps it
_FROMBUFFER = np.zeros(0).__reduce_ex__(5)[0]  # numpy's _frombuffer (pickle protocol 5)
_SAFE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): codecs.encode,
}


class CifarError(PipelineError):
    """A file under source.cifar10.root is missing or is not a CIFAR-10 python batch."""


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside _SAFE_GLOBALS (so no code can run from the file)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR-10 batch never does") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("uses persistent ids, which a CIFAR-10 batch never does")


def read_batch(path: Path) -> dict[str, Any]:
    """One pickled batch file as a dict with str keys, read without running code from it; CifarError says why not."""
    try:
        size = path.stat().st_size
        if size > MAX_BATCH_BYTES:
            raise CifarError(f"{path}: not a CIFAR-10 batch ({size} bytes; a batch has about 31 MB)")
        with open(path, "rb") as handle:
            content = _BatchUnpickler(handle, encoding="latin1").load()
    except OSError as exc:
        raise CifarError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CifarError(f"{path}: not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(content, dict):
        raise CifarError(f"{path}: not a CIFAR-10 batch (holds a {type(content).__name__}, not a dict)")
    return {key.decode("latin1") if isinstance(key, bytes) else str(key): value for key, value in content.items()}


def _images_and_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N×32×32×3 uint8 images, N labels) of one training batch, checked."""
    batch = read_batch(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_VALUES:
        raise CifarError(f"{path}: not a CIFAR-10 batch ('data' is not an N×3072 uint8 array)")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(label) is int and 0 <= label < len(CLASSES) for label in labels):
        raise CifarError(f"{path}: not a CIFAR-10 batch ('labels' is not a list of {len(data)} class numbers 0-9)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels)


def _class_names(path: Path) -> tuple[str, ...]:
    names = read_batch(path).get("label_names")
    if not isinstance(names, list) or len(names) != len(CLASSES) or not all(isinstance(name, str) for name in names):
        raise CifarError(f"{path}: not CIFAR-10's batches.meta ('label_names' is not a list of 10 names)")
    return tuple(names)


def _download(root: Path) -> None:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    except (OSError, RuntimeError) as exc:
        raise CifarError(f"source.cifar10.download: cannot fetch {CIFAR10.url} into {root} ({exc})") from None


@lru_cache(maxsize=2)
def training_set(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images N×32×32×3 uint8, labels, class names) of the training batches under root/cifar-10-batches-py."""
    folder = root / CIFAR10_FOLDER
    if download and not folder.is_dir():
        _download(root)
    missing = [name for name in (*TRAIN_BATCHES, META) if not (folder / name).is_file()]
    if missing:
        hint = "" if download else " (set source.cifar10.download: true to download it)"
        raise CifarError(f"source.cifar10.root: {folder} lacks {', '.join(missing)}{hint}")
    parts = [_images_and_labels(folder / name) for name in TRAIN_BATCHES]
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts]), _class_names(folder / META)


def class_indexes(root: Path, download: bool, category: str, count: int) -> list[int]:
    """The first `count` training-set indexes of the class named `category`."""
    _, labels, classes = training_set(root, download)
    if category not in classes:
        raise PipelineError(f"source.categories: {category!r} is not a CIFAR-10 class ({', '.join(classes)})")
    return [int(i) for i in np.flatnonzero(labels == classes.index(category))[:count]]


def save_images(category: str, root: Path, download: bool, indexes: list[int], output: RawOutput) -> list[RawFile]:
    """Each training image as a PNG to `output`, with `cifar10://train/<index>` as its source."""
    images, _, _ = training_set(root, download)
    rows = []
    for index in indexes:
        encoded = io.BytesIO()
        Image.fromarray(images[index]).save(encoded, "PNG")
        rows.append(output.save(category, f"cifar10_{index:05d}.png", encoded.getvalue(), "cifar10", f"cifar10://train/{index}"))
    return rows


class Cifar10Source(Source[Cifar10Params]):
    """The first per_category training images of each class, in batches of indexes."""

    Params = Cifar10Params

    @property
    def root(self) -> Path:
        assert self.params.root is not None  # guaranteed by `check`
        return self.params.root

    def plan(self, category: str, batch_size: int) -> Iterator[Sequence[int]]:
        yield from batched(class_indexes(self.root, self.params.download, category, self.per_category), batch_size)

    def fetch(self, unit: Unit, output: RawOutput, stop: threading.Event | None) -> Scraped:
        return Scraped(save_images(unit.category, self.root, self.params.download, list(unit.items), output))

    def describe(self) -> str:
        return f"CIFAR-10 training images from {self.root / CIFAR10_FOLDER}"
