"""Colorization quality on real photos the model never saw: the GAN against L1-only and the grayscale baseline.

    python benchmarks/bench_quality.py DATASET [--preset cifar10] [--params params.yaml] [-S train.epochs=3 ...]
        [--variant NAME:KEY=VALUE,KEY=VALUE ...] [--score-on OTHER ...] [--work DIR]

DATASET holds `train/<class>/` and `test/<class>/` images (e.g. CIFAR-10 as JPEG folders); the params are the params
file with a preset (presets/NAME.yaml) applied, if any, whose source is ignored. The training images and, apart, the
test images go through the pipeline's own clean and resize stages (their library functions, with the params' clean
and resize settings), as the split stage's test images do: the model colorizes color photos, and a gray photo's
truth is its own grayscale baseline. Each variant trains with
`train_model` and is scored with `evaluate_model`, exactly as the train and evaluate stages do. Variants are the
params plus dotted overrides; by default `gan` (the params as they are) and `l1` (train.lambda_gan=0). The prepared
split is cached in the work folder, keyed by the dataset and the clean and resize params. `--score-on OTHER` scores
each variant's model on the test photos of another collection too (OTHER/test/<class>/, prepared the same way): how
the model does on photos unlike those it learnt from.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from PIL import Image

from flows.train import run_training
from pipeline.config import Params, parse_params
from pipeline.core.fsutil import sha256_file
from pipeline.core.images import luminance_gray
from pipeline.core.parallel import process_pool
from pipeline.dataset.clean import clean_dataset
from pipeline.dataset.manifests import MANIFEST, RawFile, ResizedFile, SplitFile, columns, read_table, write_table
from pipeline.dataset.resize import resize_dataset
from pipeline.model.evaluate import evaluate_model
from pipeline.model.train import GENERATOR_FILE
from pipeline.presets import PRESETS, applied

SHOWN = ("psnr", "ssim", "ab_error", "accuracy_eps2", "accuracy_eps5", "colorfulness")
DEFAULT_VARIANTS = ("gan:", "l1:train.lambda_gan=0")
BASELINES = {"gray": "gray baseline", "tint": "tint baseline (training median ab)"}


def _set(raw: dict[str, Any], dotted: str, value: str) -> None:
    """raw[a][b][c] = value for "a.b.c", the value parsed as YAML (as `dvc exp run -S` does)."""
    *parents, leaf = dotted.split(".")
    for key in parents:
        raw = raw.setdefault(key, {})
    raw[leaf] = yaml.safe_load(value)


def _params(base: dict[str, Any], overrides: list[str]) -> Params:
    raw = copy.deepcopy(base)
    for item in overrides:
        key, _, value = item.partition("=")
        _set(raw, key.strip(), value)
    return parse_params(raw, origin="bench_quality")


def _write_pair(image: Image.Image, split_root: Path, split: str, name: str) -> None:
    image.save(split_root / f"{split}_y" / name)
    luminance_gray(image).save(split_root / f"{split}_x" / name)


def _clean_and_resize(dataset: Path, part: str, params: Params, work: Path) -> Path:
    """The photos of dataset/part through the clean and resize stages' functions, with the params' settings; the
    resized folder, whose manifest lists the photos kept."""
    raw_root, clean_root, resized_root = (work / f"{stage}-{part}" for stage in ("raw", "clean", "resized"))
    shutil.rmtree(raw_root, ignore_errors=True)
    raw_root.mkdir(parents=True)
    (raw_root / part).symlink_to((dataset / part).resolve())
    files = sorted(path for path in (dataset / part).glob("*/*") if path.is_file())
    rows = [RawFile(f"{part}/{path.parent.name}/{path.name}", path.parent.name, "folder", path.resolve().as_uri(), sha256_file(path), path.stat().st_size)
            for path in files]
    write_table(raw_root / MANIFEST, RawFile, [asdict(row) for row in rows])
    with process_pool(params.workers) as pool:
        summary = clean_dataset(raw_root, clean_root, params.clean, pool.map, params.workers)
        resize_dataset(clean_root, resized_root, params.resize, pool.map, params.workers)
    print(f"clean: kept {summary.kept} of {summary.total} {part} images; rejected {summary.rejected_by_reason}")
    return resized_root


def prepare_split(dataset: Path, params: Params, work: Path, parts: tuple[str, ...] = ("train", "test")) -> Path:
    """work/split-<key>: the training and the test photos (or the `parts` asked for), each cleaned and resized, laid out
    as the split stage lays them out (train_x, train_y, test_x, test_y, manifest.csv); made once per dataset, parts and
    clean/resize params."""
    settings = {"dataset": str(dataset.resolve()), "clean": params.clean.model_dump(), "resize": params.resize.model_dump(), "test": "cleaned",
                "manifest": columns(SplitFile)} | ({} if parts == ("train", "test") else {"parts": parts})
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    split_root = work / f"split-{key}"
    if (split_root / MANIFEST).is_file():
        return split_root
    staging = work / "split-staging"
    shutil.rmtree(staging, ignore_errors=True)
    for folder in ("train_x", "train_y", "test_x", "test_y"):
        (staging / folder).mkdir(parents=True)
    split_rows = []
    for part in parts:
        resized_root = _clean_and_resize(dataset, part, params, work / f"stages-{key}")
        for resized_file, category in read_table(resized_root / MANIFEST, ResizedFile)[["file", "category"]].itertuples(index=False):
            name = resized_file.replace("/", "_")
            with Image.open(resized_root / resized_file) as image:
                _write_pair(image.convert("RGB"), staging, part, name)
            split_rows.append(SplitFile(name, category, part, f"{resized_root.relative_to(work)}/{resized_file}"))  # relative to the work folder
    write_table(staging / MANIFEST, SplitFile, [asdict(row) for row in split_rows])
    staging.rename(split_root)
    return split_root


def train_variant(name: str, params: Params, split_root: Path, work: Path) -> tuple[Path, float]:
    """Train one variant from scratch: its generator file and the minutes it took."""
    folder = work / "runs" / name
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    run_training(params, split_root, folder / "models", folder / "training")
    return folder / "models" / GENERATOR_FILE, (time.monotonic() - started) / 60


def score(name: str, minutes: float, model: Path, split_root: Path, out: Path, params: Params) -> dict[str, Any]:
    """A trained variant scored on a split's test images; its row of the table, and the baselines' (gray, tint)."""
    metrics = evaluate_model(split_root, model, out, device=params.train.device)

    def row(label: str, method: str, train_minutes: float) -> dict[str, Any]:
        scores = metrics[method]
        return {"variant": label, "train_minutes": round(train_minutes, 1), **{m: scores[m]["mean"] for m in SHOWN},
                "colorfulness_vs_truth": scores["colorfulness"]["mean"] / scores["colorfulness_truth"]["mean"],
                "spread_vs_truth": scores["color_spread"]["mean"] / scores["color_spread_truth"]["mean"]}

    return {"row": row(name, "model", minutes), "baselines": [row(BASELINES[m], m, 0.0) for m in BASELINES], "images": metrics["images"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a folder with train/<class>/ and test/<class>/ images")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file to start from (default: %(default)s)")
    parser.add_argument("--preset", help="apply presets/PRESET.yaml to the params (its source is ignored)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="override a param for every variant")
    parser.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE,...", help=f"a variant (default: {' '.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--score-on", type=Path, action="append", default=[], metavar="OTHER",
                        help="also score each variant on the test/<class>/ photos of this other collection")
    parser.add_argument("--work", type=Path, help="work folder, kept for a later run to reuse (default: a new temporary folder)")
    args = parser.parse_args()
    base = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    if args.preset:
        preset = yaml.safe_load((PRESETS / f"{args.preset}.yaml").read_text(encoding="utf-8"))
        base = applied(base, {key: value for key, value in preset.items() if key != "source"})
    common = _params(base, args.set)
    args.work = args.work or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    args.work.mkdir(parents=True, exist_ok=True)
    splits = {args.dataset: prepare_split(args.dataset, common, args.work)}
    splits |= {other: prepare_split(other, common, args.work, parts=("test",)) for other in args.score_on}
    tables: dict[Path, list[dict[str, Any]]] = {dataset: [] for dataset in splits}
    images: dict[Path, int] = {}
    for spec in args.variant or DEFAULT_VARIANTS:
        name, _, overrides = spec.partition(":")
        params = _params(base, [*args.set, *filter(None, overrides.split(","))])
        model, minutes = train_variant(name, params, splits[args.dataset], args.work)
        for number, (dataset, split_root) in enumerate(splits.items()):
            result = score(name, minutes, model, split_root, model.parent.parent / f"eval-{number}", params)
            kept = [row for row in tables[dataset] if row["variant"] not in BASELINES.values()]
            tables[dataset] = [*kept, result["row"], *result["baselines"]]
            images[dataset] = result["images"]
            print(f"\nscored on {images[dataset]} test images of {dataset}:")
            print(pd.DataFrame(tables[dataset]).round(4).to_markdown(index=False), flush=True)
    preset = f" with presets/{args.preset}.yaml" if args.preset else ""
    print(f"\ntrained on {args.dataset}; params {args.params}{preset} {' '.join(f'-S {s}' for s in args.set)}")


if __name__ == "__main__":
    main()
