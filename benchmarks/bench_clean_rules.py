"""The clean stage's color and near-duplicate rules on real photo folders: the old rules against the new.

    nice -n 19 python benchmarks/bench_clean_rules.py cifar10-images/train intel-scenes/train \\
        [--sheets DIR] [--speed 5000] [--workers 2]

Each ROOT holds <class>/*.jpg. For each, the images dropped as grayscale by the old rule (Hasler-Süsstrunk
colorfulness < 6) and by the new one (color beyond a tint < clean.min_chroma), per class; the near-duplicate
pairs found by the old rule (pHash distance only) and by the new one (pHash and lightness correlation), and
how many pair two classes; contact sheets to look at; and measurement speed, old against new, in images/s
on one core (decode as the stage does, then measure). Figures are in docs/cleaning.md.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.images import colorfulness, image_grid, perceptual_hash
from pipeline.dataset.clean import Inspection, _decode, _measure, deduplicate
from pipeline.dataset.params import CleanParams

OLD_MIN_COLORFULNESS = 6.0
SHEET_SIZE = 60


@dataclass(frozen=True)
class Measured:
    file: Path
    colorfulness: float
    inspection: Inspection


def _small(path: Path) -> Image.Image:
    with Image.open(path) as image:
        rgb, _ = _decode(image)
        small = rgb.copy()
    small.thumbnail((128, 128), Image.Resampling.BOX)
    return small


def old_measure(path: Path) -> tuple[float, str]:
    """What the stage measured before: colorfulness and pHash of the ≤128-px thumbnail."""
    small = _small(path)
    return colorfulness(np.asarray(small)), f"{perceptual_hash(small):016x}"


def new_measure(path: Path) -> tuple[float, str, bytes]:
    with Image.open(path) as image:
        rgb, _ = _decode(image)
        return _measure(rgb)


def measure(path: Path) -> Measured:
    """Both rules' measurements from one decode."""
    with Image.open(path) as image:
        rgb, _ = _decode(image)
        chroma, phash, luma = _measure(rgb)
    small = rgb.copy()
    small.thumbnail((128, 128), Image.Resampling.BOX)
    inspection = Inspection(str(path), path.parent.name, str(path), chroma=chroma, phash=phash, luma=luma)
    return Measured(path, colorfulness(np.asarray(small)), inspection)


def sheet(files: list[Path], out: Path, seed: int = 0) -> None:
    chosen = sorted(random.Random(seed).sample(files, min(SHEET_SIZE, len(files))))
    if chosen:
        images = [Image.open(file) for file in chosen]
        image_grid([images[i : i + 10] for i in range(0, len(images), 10)], 96).save(out)


def pair_sheet(pairs: list[tuple[Path, Path]], out: Path) -> None:
    chosen = random.Random(0).sample(pairs, min(SHEET_SIZE // 2, len(pairs)))
    if chosen:
        rows = [[Image.open(a), Image.open(b)] for a, b in chosen]
        image_grid([rows[i] + rows[i + 1] if i + 1 < len(rows) else rows[i] for i in range(0, len(rows), 2)], 96).save(out)


def near_pairs(measured: list[Measured], rules: CleanParams) -> list[tuple[Path, Path]]:
    """(kept earlier, dropped) for each near-duplicate the rules find, in folder order."""
    by_name = {m.inspection.raw_file: m.file for m in measured}
    result = deduplicate([m.inspection for m in measured], rules)
    pairs = []
    for item in result:
        if item.reason == "near_duplicate":
            pairs.append((by_name[item.detail.split(" (")[0].removeprefix("looks like ")], by_name[item.raw_file]))
    return pairs


def report(root: Path, measured: list[Measured], rules: CleanParams, sheets: Path) -> None:
    tag = "-".join(root.parts[-2:])
    old = {m.file for m in measured if m.colorfulness < OLD_MIN_COLORFULNESS}
    new = {m.file for m in measured if m.inspection.chroma < rules.min_chroma}
    print(f"\n{root}: {len(measured)} images")
    print(f"  grayscale, old rule (colorfulness < {OLD_MIN_COLORFULNESS}): {len(old)}")
    print(f"  grayscale, new rule (color beyond a tint < {rules.min_chroma}): {len(new)}")
    print(f"    dropped by old only: {len(old - new)}; by new only: {len(new - old)}; exactly gray (colorfulness < 1): "
          f"{sum(m.colorfulness < 1 for m in measured)}")
    classes = sorted({m.file.parent.name for m in measured})
    counts = [Counter(file.parent.name for file in group) for group in (old, new, old - new, new - old)]
    print("    per class (old / new / old only / new only): " + ", ".join(f"{c} {'/'.join(str(n[c]) for n in counts)}" for c in classes))
    sheet(sorted(old - new), sheets / f"{tag}-old-dropped-new-keeps.png")
    sheet(sorted(new), sheets / f"{tag}-new-drops.png")
    sheet(sorted(new - old), sheets / f"{tag}-new-drops-old-kept.png")
    sheet(sorted(m.file for m in measured if m.file in new and m.colorfulness >= 1), sheets / f"{tag}-new-drops-not-exactly-gray.png")
    kept = [m for m in measured if m.file not in new and m.file not in old]  # the same images under both rules
    old_pairs = near_pairs(kept, rules.model_copy(update={"near_duplicate_correlation": -1.0}))
    new_pairs = near_pairs(kept, rules)
    for name, pairs in (("old (pHash only)", old_pairs), ("new (pHash and correlation)", new_pairs)):
        across = sum(a.parent.name != b.parent.name for a, b in pairs)
        print(f"  near-duplicates, {name}: {len(pairs)} pairs, {across} across classes")
    pair_sheet(sorted(set(old_pairs) - set(new_pairs)), sheets / f"{tag}-pairs-old-only.png")
    pair_sheet(new_pairs, sheets / f"{tag}-pairs-new.png")


def speed(files: list[Path]) -> None:
    for name, fn in (("old", old_measure), ("new", new_measure)):
        start = time.perf_counter()
        for file in files:
            fn(file)
        print(f"  measure, {name}: {len(files) / (time.perf_counter() - start):.0f} images/s on one core ({len(files)} images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--sheets", type=Path, default=None,
                        help="where the contact sheets go (default: a new temporary folder)")
    parser.add_argument("--speed", type=int, default=5000, help="images of the first root to time (0: skip)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.sheets = args.sheets or Path(tempfile.mkdtemp(prefix="clean-rules-"))
    args.sheets.mkdir(parents=True, exist_ok=True)
    rules = CleanParams()
    for index, root in enumerate(args.roots):
        files = sorted(root.glob("*/*.jpg"))
        if index == 0 and args.speed:
            print(f"{root}: speed")
            speed(files[: args.speed])
        with ProcessPoolExecutor(args.workers) as pool:
            measured = list(pool.map(measure, files, chunksize=256))
        report(root, measured, rules, args.sheets)
    print(f"\ncontact sheets: {args.sheets}")


if __name__ == "__main__":
    main()
