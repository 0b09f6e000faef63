"""A trained generator on real photos it never saw: the color photos that ship with scikit-image (those the evaluate stage
scores, pipeline/model/real_photos.py), at full resolution.

    python benchmarks/bench_real_photos.py [--model data/models/generator.pt]

Each photo is colorized from its own lightness, as `colorize` does, and scored against the original with the
evaluate stage's metrics: by the colorizer as it is (the network sees a Lanczos reduction, colors are joined with the
full-resolution L in strips), by the old whole-frame colorizer (bilinear reduction of L; see bench_colorize_memory.py),
and as the grayscale baseline (the photo's lightness, no color). Mean over the photos, and per photo.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from bench_colorize_memory import whole_frame_colorize_batch
from PIL import Image

from pipeline.model.colorizer import Colorizer
from pipeline.model.metrics import grayscale_baseline, image_metrics
from pipeline.model.real_photos import real_photos

SHOWN = ("psnr", "ab_error", "accuracy_eps5", "colorfulness", "colorfulness_truth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("data/models/generator.pt"), help="generator (default: %(default)s)")
    args = parser.parse_args()
    colorizer = Colorizer.load(args.model, "cpu")
    print(f"{args.model}: trained on {colorizer.info.get('train', {}).get('epochs', '?')} epochs, image size {colorizer.image_size}")
    methods = {
        "ours": lambda image: colorizer.colorize(image),
        "old whole-frame": lambda image: whole_frame_colorize_batch(colorizer, [image])[0],
        "grayscale": lambda image: Image.fromarray(grayscale_baseline(np.asarray(image))),
    }
    rows = []
    for name, truth in real_photos().items():
        for method, colorize in methods.items():
            scores = asdict(image_metrics(np.asarray(colorize(truth)), np.asarray(truth)))
            rows.append({"photo": f"{name} {truth.width}x{truth.height}", "method": method, **{k: scores[k] for k in SHOWN}})
    table = pd.DataFrame(rows)
    print(table.groupby("method", sort=False)[list(SHOWN)].mean().round(3).to_markdown())
    print()
    print(table.pivot(index="photo", columns="method", values="psnr").round(2).to_markdown())


if __name__ == "__main__":
    main()
