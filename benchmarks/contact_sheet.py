"""A contact sheet of photos a model never saw, grayscale | colorized | original, with each kind's scores (PSNR dB) against
gray and the tint (the pictures in the README and docs/quality.md).

    python benchmarks/contact_sheet.py people=DIR food=DIR street=DIR interiors=DIR -o sheet.jpg [--model PATH]

Each kind's photos are drawn from its folder (sub-folders too) by a hash of their paths, as evaluate draws a collection's,
skipping those clean would drop (gray, too small); each is a center crop scaled to --size, colorized as `colorize` does.
The first --shown of each kind's photos, in name order, are shown; rows hold --across photos; a kind starts a new row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from PIL import Image

from pipeline.core.images import image_grid
from pipeline.dataset.params import CleanParams
from pipeline.model.colorizer import Colorizer
from pipeline.model.evaluate import GridRow, score_photos, tint_of
from pipeline.model.photo_folders import draw_photos, scored_photo
from pipeline.paths import MODEL, SPLIT


def kind_folder(text: str) -> tuple[str, Path]:
    name, _, folder = text.partition("=")
    if not folder or not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: expected KIND=FOLDER with an existing folder")
    return name, Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("kinds", nargs="+", type=kind_folder, metavar="KIND=FOLDER", help="a kind of photo and its folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the sheet (.jpg or .png)")
    parser.add_argument("--model", type=Path, default=MODEL, help="generator (default: %(default)s)")
    parser.add_argument("--split", type=Path, default=SPLIT, help="for the tint of a model file that lacks it (default: %(default)s)")
    parser.add_argument("--per-kind", type=int, default=20, help="photos of each kind scored (default: %(default)s)")
    parser.add_argument("--shown", type=int, default=4, help="photos of each kind shown, the first in name order (default: %(default)s)")
    parser.add_argument("--across", type=int, default=2, help="photos per row (default: %(default)s)")
    parser.add_argument("--size", type=int, default=160, help="side of each photo, px (default: %(default)s)")
    args = parser.parse_args()

    colorizer = Colorizer.load(args.model, "cpu")
    tint = tint_of(colorizer, args.split)
    rows: list[GridRow] = []
    table = []
    for kind, folder in args.kinds:
        photos = [(path.name, photo) for path in draw_photos(folder, 10 * args.per_kind) if (photo := scored_photo(path, args.size, CleanParams())) is not None]
        scores, grid = score_photos(colorizer, photos[: args.per_kind], tint, args.shown)
        rows += [sum(grid[i : i + args.across], []) for i in range(0, len(grid), args.across)]
        table.append({"kind": kind, "photos": scores["images"], **{f"{method} PSNR": scores[method]["psnr"]["mean"] for method in ("model", "gray", "tint")}})
    sheet: Image.Image = image_grid(rows, cell=args.size)
    sheet.save(args.output, quality=80) if args.output.suffix.lower() in (".jpg", ".jpeg") else sheet.save(args.output)
    print(pd.DataFrame(table).round(2).to_markdown(index=False))
    print(f"{args.output}: {sheet.width}x{sheet.height}, {args.model}")


if __name__ == "__main__":
    main()
