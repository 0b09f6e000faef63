"""The `tinyimagenet` source: Tiny ImageNet's training photos (64×64 JPEG, 500 per class) of the chosen classes, from
the folder its zip unpacks to: `tiny-imagenet-200/train/<wnid>/images/*.JPEG`, `wnids.txt` (the classes) and
`words.txt` (each WordNet id's names). A category is a class's first name in words.txt (`Egyptian cat`) or its
WordNet id (`n02124075`). A download (`source.tinyimagenet.download`) goes through torchvision and is checked against
the zip's MD5."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.parallel import batched
from pipeline.dataset.sources.base import RawOutput, Scraped, Source, Unit
from pipeline.dataset.sources.folder import copy_files, first_files
from pipeline.dataset.sources.params import TINYIMAGENET_FOLDER, TinyImageNetParams

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ZIP_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
MAX_LIST_BYTES = 16 * 1024 * 1024  # words.txt, all of WordNet's 82,115 ids, has 2.7 MB


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(URL, str(root), md5=ZIP_MD5)
    except (OSError, RuntimeError) as exc:
        raise PipelineError(f"source.tinyimagenet.download: cannot fetch {URL} into {root} ({exc})") from None


def _lines(path: Path) -> list[str]:
    """The lines of a small text file of the dataset; a missing, huge or binary one is a PipelineError naming it."""
    try:
        size = path.stat().st_size
        if size > MAX_LIST_BYTES:
            raise PipelineError(f"{path}: not Tiny ImageNet's ({size} bytes; at most {MAX_LIST_BYTES} expected)")
        return path.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        raise PipelineError(f"source.tinyimagenet.root: cannot read {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not Tiny ImageNet's (not UTF-8 text)") from None


@lru_cache(maxsize=2)
def class_ids(root: Path, download: bool) -> dict[str, str]:
    """Each class's WordNet id by the names a category may use: its first name in words.txt, and the id itself."""
    folder = root / TINYIMAGENET_FOLDER
    if download and not folder.is_dir():
        _download(root)
    names = {}
    for number, line in enumerate(_lines(folder / "words.txt"), 1):
        wnid, tab, words = line.partition("\t")
        if not tab:
            raise PipelineError(f"{folder / 'words.txt'}: line {number} is not '<wnid><tab><names>'")
        names[wnid] = words.split(",")[0].strip()
    ids = {}
    for wnid in (line.strip() for line in _lines(folder / "wnids.txt") if line.strip()):
        if wnid not in names:
            raise PipelineError(f"{folder / 'wnids.txt'}: {wnid} has no names in words.txt")
        ids[names[wnid]] = ids[wnid] = wnid
    return ids


def class_names(root: Path, download: bool = False) -> list[str]:
    """Every class's first name, in wnids.txt's order (what `source.categories` may list)."""
    return [name for name, wnid in class_ids(root, download).items() if name != wnid]


class TinyImageNetSource(Source[TinyImageNetParams]):
    """The first per_category training photos (by name) of each class, in batches of files."""

    Params = TinyImageNetParams

    @property
    def root(self) -> Path:
        assert self.params.root is not None  # guaranteed by `check`
        return self.params.root

    def plan(self, category: str, batch_size: int) -> Iterator[Sequence[tuple[Path, str]]]:
        ids = class_ids(self.root, self.params.download)
        if category not in ids:
            raise PipelineError(f"source.categories: {category!r} is not a Tiny ImageNet class (its first name in words.txt, or its wnid)")
        yield from batched(first_files(self.root / TINYIMAGENET_FOLDER / "train" / ids[category] / "images", category, self.per_category), batch_size)

    def fetch(self, unit: Unit, output: RawOutput, stop: threading.Event | None) -> Scraped:
        return copy_files(unit.category, list(unit.items), output, self.name)

    def describe(self) -> str:
        return f"Tiny ImageNet training photos from {self.root / TINYIMAGENET_FOLDER}"
