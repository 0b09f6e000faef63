"""The `colorize` command: apply the trained generator to image files, folders and tar shards, one PNG out per image in."""

from __future__ import annotations

import argparse
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import atomic_write_bytes
from pipeline.core.images import DECODE_ERRORS, to_rgb
from pipeline.core.shards import read_member, shard_index, split_member
from pipeline.model.colorizer import Colorizer, load_colorizer
from pipeline.model.devices import DEVICE_CHOICES
from pipeline.paths import MODEL

PROG = "colorize"
EXIT_OK, EXIT_SKIPPED, EXIT_ERROR = 0, 1, 2

DESCRIPTION = """\
Colorize photos with the trained generator. Each input image is written as OUTDIR/<name>.png at its
full resolution; a color photo is colorized from its luminance. Any size and mode (grayscale, RGB,
RGBA, CMYK, 16-bit, palette) is accepted, and EXIF rotation is applied first."""

EPILOG = """\
example:
  colorize old-photos/ scan.tif -o colorized/

Folders contribute the files directly inside them (not sub-folders, not hidden files), in name order.
A tar shard (.tar, as data.layout: shards writes them) contributes its images: <key>.png for each
sample, of a split's shard its gray inputs (<key>.x.png); e.g. colorize data/split/test -o out/.
Two inputs with the same name get <name>.png and <name>-2.png; an input inside OUTDIR is never
overwritten. An input whose PNG already exists in OUTDIR is reported and skipped, unless
--overwrite is given. Files that are not readable images are reported and skipped.

exit status: 0 all colorized, 1 some inputs skipped (unreadable, or PNG exists), 2 usage error,
bad model, or no input images"""


class CliError(Exception):
    """A problem that stops the whole run: reported as one line, exit status 2."""


class Skipped(Exception):
    """An input left out, the others go on: reported as one line, exit status 1; the message says why."""


class Unreadable(Skipped):
    """An input that is not a decodable image."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="an image file, a tar shard, or a folder of them")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUTDIR", help="folder for the PNGs (created if missing)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace PNGs already in OUTDIR (default: skip those inputs)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=MODEL,
        metavar="PATH",
        help="generator file written by training (default: %(default)s)",
    )
    parser.add_argument(
        "--device", default="auto", help=f"{DEVICE_CHOICES}; auto: CUDA, then MPS, then CPU (default: auto)"
    )
    return parser


@dataclass(frozen=True)
class ShardMember:
    """An image inside a tar shard, as an input: `stem` is its sample's key."""

    shard: Path
    member: str
    offset: int

    @property
    def stem(self) -> str:
        return split_member(self.member)[0]

    def __str__(self) -> str:
        return f"{self.shard}:{self.member}"


Input = Path | ShardMember


def shard_images(shard: Path) -> list[ShardMember]:
    """A shard's images: every member, or of a split's shard (samples <key>.x.png and <key>.y.png) the gray inputs."""
    members = shard_index(shard)
    gray = [(name, offset) for name, offset in members if split_member(name)[1] == "x.png"]
    return [ShardMember(shard, name, offset) for name, offset in gray or members]


def find_inputs(paths: list[Path]) -> list[Input]:
    """The files named, and the visible files directly inside the folders named, in order; a tar shard among them gives
    its images."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith("."))
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"input {path} not found")
    found = [image for path in files for image in (shard_images(path) if path.suffix == ".tar" else [path])]
    if not found:
        raise CliError(f"no input images: {', '.join(map(str, paths))} holds no files")
    return found


def plan_outputs(inputs: list[Input], outdir: Path) -> list[Path]:
    """OUTDIR/<stem>.png per input; a name already taken (ignoring case), or an input's own file, gets -2, -3, …"""
    taken = {path.name.casefold() for path in inputs if isinstance(path, Path) and path.parent.resolve() == outdir.resolve()}
    outputs = []
    for path in inputs:
        name, number = f"{path.stem}.png", 2
        while name.casefold() in taken:
            name, number = f"{path.stem}-{number}.png", number + 1
        taken.add(name.casefold())
        outputs.append(outdir / name)
    return outputs


def demo_model_warning(colorizer: Colorizer) -> str | None:
    """One line when the model learnt from the synthetic demo scenes only (generator.pt's info["data"]), else None."""
    trained_on = colorizer.info.get("data")
    if not isinstance(trained_on, dict) or trained_on.get("source") != "synthetic":
        return None
    return (
        f"{PROG}: warning: this model was trained on the synthetic demo scenes only; expect poor colors on real photos. "
        "Train it on real ones (README, Presets): python -m pipeline.presets cifar10 | xargs dvc exp run, "
        "or -S source.kind=folder -S source.folder.path=DIR (one sub-folder of photos per category)"
    )


def read_image(source: Input) -> Image.Image:
    """The fully decoded, upright 8-bit RGB image; Unreadable says why not."""
    try:
        if isinstance(source, ShardMember):
            with open(source.shard, "rb") as shard:
                source = io.BytesIO(read_member(shard, source.shard, source.offset, source.member))
        if (source.stat().st_size if isinstance(source, Path) else len(source.getvalue())) == 0:
            raise Unreadable("empty file")
        with Image.open(source) as image:  # closes the file only: the pixels stay usable
            ImageOps.exif_transpose(image, in_place=True)  # decodes, and rotates without keeping a second copy
            return to_rgb(image)
    except PipelineError as exc:  # a shard's member that is not what its header says
        raise Unreadable(str(exc)) from None
    except UnidentifiedImageError:
        raise Unreadable("not an image (unrecognized format)") from None
    except Image.DecompressionBombError as exc:
        raise Unreadable(f"too large: {exc}") from None
    except DECODE_ERRORS as exc:
        raise Unreadable(f"cannot decode: {exc}") from None


def write_png(image: Image.Image, path: Path) -> None:
    """Atomically, so an interrupted run never leaves a half-written PNG."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc


def announce_renames(inputs: list[Input], outputs: list[Path]) -> None:
    for source, target in zip(inputs, outputs):
        if target.stem != source.stem:
            print(f"{PROG}: {source} is written to {target} ({source.stem}.png is taken)", file=sys.stderr)


def colorize_all(colorizer: Colorizer, inputs: list[Input], outputs: list[Path], overwrite: bool) -> int:
    """Colorize each input into its output; report and skip unreadable ones, and (unless `overwrite`) those whose output
    already exists. Returns how many were skipped."""
    skipped = 0
    for source, target in tqdm(list(zip(inputs, outputs)), desc=PROG, unit="img", dynamic_ncols=True, disable=None):
        try:
            colorize_file(colorizer, source, target, overwrite)
        except Skipped as exc:
            tqdm.write(f"{PROG}: skipped {source}: {exc}", file=sys.stderr)
            skipped += 1
    return skipped


def colorize_file(colorizer: Colorizer, source: Input, target: Path, overwrite: bool) -> None:
    """Colorize `source` into `target`; Skipped if `target` exists and may not be replaced, or `source` is unreadable.
    The input is freed once colorized, before the PNG is encoded, so at most two full-size images are held at once."""
    if not overwrite and os.path.lexists(target):  # plan_outputs gave this run's outputs distinct names: not one of ours
        raise Skipped(f"{target} exists (use --overwrite to replace it)")
    write_png(colorizer.colorize(read_image(source)), target)


def main(argv: list[str] | None = None) -> int:
    """The console script: returns the exit status (0 all done, 1 some skipped, 2 error)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported by argparse
        return int(exc.code or 0)
    try:
        inputs = find_inputs(args.inputs)
        outputs = plan_outputs(inputs, args.output)
        colorizer = load_colorizer(args.model, args.device, "--device")
        if warning := demo_model_warning(colorizer):
            print(warning, file=sys.stderr)
        announce_renames(inputs, outputs)
        skipped = colorize_all(colorizer, inputs, outputs, args.overwrite)
    except (CliError, PipelineError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"colorized {len(inputs) - skipped} images into {args.output} ({skipped} skipped)")
    return EXIT_SKIPPED if skipped else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
