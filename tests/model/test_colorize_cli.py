"""The `colorize` command: files and folders in, one PNG per readable image out, clear exit codes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.model.colorize_cli import main
from pipeline.model.colorizer import save_generator
from pipeline.model.lab import LabNormalization
from pipeline.model.networks import define_generator
from pipeline.model.params import GeneratorParams
from tests.hostile import WritesMarker
from tests.images import colorful, encode
from tests.model.test_train import tiny_split

EXIF_ORIENTATION = 0x0112


def save_model(path: Path, info: dict) -> Path:
    """A small untrained generator whose file records `info` (a file of older training code has no "data")."""
    config = GeneratorParams(base_filters=8, depth=3)
    save_generator(path, define_generator(config).eval(), config, LabNormalization(), 32, info)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "generator.pt", {})


def run(model: Path, *args: str | Path) -> int:
    return main([*map(str, args), "--model", str(model), "--device", "cpu"])


def sixteen_bit(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.asarray(colorful(width, height).convert("L"), dtype=np.uint16) * 257)


def rotated_jpeg(width: int, height: int) -> bytes:
    """A JPEG stored width×height whose EXIF says: rotate 90° to display (height×width)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    return encode(colorful(width, height), "JPEG", exif=exif.tobytes())


GOOD = {
    "rgb.png": (lambda: encode(colorful(45, 33), "PNG"), (45, 33)),
    "gray.jpg": (lambda: encode(colorful(31, 50).convert("L"), "JPEG"), (31, 50)),
    "alpha.png": (lambda: encode(colorful(29, 17).convert("RGBA"), "PNG"), (29, 17)),
    "cmyk.jpg": (lambda: encode(colorful(40, 23).convert("CMYK"), "JPEG"), (40, 23)),
    "deep.png": (lambda: encode(sixteen_bit(37, 21), "PNG"), (37, 21)),
    "palette.gif": (lambda: encode(colorful(33, 27).convert("P"), "GIF"), (33, 27)),
    "turned.jpg": (lambda: rotated_jpeg(43, 19), (19, 43)),
}


def write_good(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (make, _) in GOOD.items():
        (folder / name).write_bytes(make())


def assert_good_outputs(out: Path) -> None:
    for name, (_, size) in GOOD.items():
        with Image.open(out / f"{Path(name).stem}.png") as result:
            assert (result.mode, result.size) == ("RGB", size), name


def test_all_good_images_are_colorized_at_their_size(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_good(tmp_path / "in")
    (tmp_path / "in" / ".DS_Store").write_bytes(os.urandom(64))  # hidden files are not inputs

    assert run(model, tmp_path / "in", "-o", tmp_path / "out") == 0

    assert_good_outputs(tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"{Path(name).stem}.png" for name in GOOD)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert f"colorized {len(GOOD)} images into {tmp_path / 'out'} (0 skipped)" in captured.out


@pytest.mark.parametrize(("source", "warned"), [("synthetic", True), ("folder", False), (None, False)])
def test_a_model_of_the_synthetic_demo_source_is_named_in_one_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str | None, warned: bool
) -> None:
    trained_on = {"source": source, "categories": ["sky", "forest"], "images": 900, "size": 200}
    model = save_model(tmp_path / "generator.pt", {"epochs": 1} if source is None else {"epochs": 1, "data": trained_on})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rgb.png").write_bytes(encode(colorful(45, 33), "PNG"))

    assert run(model, tmp_path / "in", "-o", tmp_path / "out") == 0

    err_lines = capsys.readouterr().err.splitlines()
    warnings = [line for line in err_lines if "synthetic demo" in line]
    assert len(warnings) == warned and len(err_lines) == warned
    if warned:
        assert warnings[0].startswith("colorize: warning: ") and "source.kind=folder" in warnings[0]
    assert (tmp_path / "out" / "rgb.png").is_file()


def test_unreadable_files_are_reported_and_skipped(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    write_good(folder)
    jpeg = encode(colorful(40, 30), "JPEG")
    bad = {
        "notes.jpg": b"shopping list: milk, eggs\n",
        "broken.jpg": jpeg[: len(jpeg) // 2],
        "empty.png": b"",
        "huge.png": encode(colorful(100, 100), "PNG"),
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2500)  # over 2x that is a bomb: huge.png; the others are smaller

    assert run(model, folder, "-o", tmp_path / "out") == 1

    captured = capsys.readouterr()
    err_lines = captured.err.splitlines()
    assert "Traceback" not in captured.err
    for name in bad:
        assert sum(str(folder / name) in line for line in err_lines) == 1, name
    assert f"colorized {len(GOOD)} images into {tmp_path / 'out'} ({len(bad)} skipped)" in captured.out
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"{Path(name).stem}.png" for name in GOOD)


def test_duplicate_stems_get_numbered_names(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder, fmt in (("a", "PNG"), ("b", "JPEG")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"cat.{fmt.lower()}").write_bytes(encode(colorful(20 + len(folder), 30), fmt))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "CAT.gif").write_bytes(encode(colorful(40, 30).convert("P"), "GIF"))

    assert run(model, tmp_path / "a", tmp_path / "b", tmp_path / "c", "-o", tmp_path / "out") == 0

    assert sorted(os.listdir(tmp_path / "out")) == ["CAT-3.png", "cat-2.png", "cat.png"]
    err = capsys.readouterr().err
    assert f"{tmp_path / 'b' / 'cat.jpeg'} is written to {tmp_path / 'out' / 'cat-2.png'}" in err
    assert f"{tmp_path / 'c' / 'CAT.gif'} is written to {tmp_path / 'out' / 'CAT-3.png'}" in err


def test_an_input_in_the_output_folder_is_never_overwritten(model: Path, tmp_path: Path) -> None:
    original = encode(colorful(24, 24), "PNG")
    (tmp_path / "photo.png").write_bytes(original)

    assert run(model, tmp_path / "photo.png", "-o", tmp_path) == 0

    assert (tmp_path / "photo.png").read_bytes() == original
    assert Image.open(tmp_path / "photo-2.png").size == (24, 24)


def test_an_unrelated_file_in_the_output_folder_is_left_alone_and_reported(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "photo.jpg").write_bytes(encode(colorful(24, 20), "JPEG"))
    (tmp_path / "in" / "other.png").write_bytes(encode(colorful(24, 20), "PNG"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "photo.png").write_bytes(b"someone else's file")

    assert run(model, tmp_path / "in", "-o", tmp_path / "out") == 1

    assert (tmp_path / "out" / "photo.png").read_bytes() == b"someone else's file"
    assert Image.open(tmp_path / "out" / "other.png").size == (24, 20)
    captured = capsys.readouterr()
    skipped, target = tmp_path / "in" / "photo.jpg", tmp_path / "out" / "photo.png"
    assert captured.err == f"colorize: skipped {skipped}: {target} exists (use --overwrite to replace it)\n"
    assert f"colorized 1 images into {tmp_path / 'out'} (1 skipped)" in captured.out


def test_overwrite_replaces_an_existing_file(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "photo.jpg").write_bytes(encode(colorful(24, 20), "JPEG"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "photo.png").write_bytes(b"someone else's file")

    assert run(model, tmp_path / "photo.jpg", "-o", tmp_path / "out", "--overwrite") == 0

    assert Image.open(tmp_path / "out" / "photo.png").size == (24, 20)
    assert capsys.readouterr().err == ""


def test_a_second_run_into_the_same_folder_skips_everything_it_would_overwrite(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_good(tmp_path / "in")
    assert run(model, tmp_path / "in", "-o", tmp_path / "out") == 0
    first = {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()}
    capsys.readouterr()

    assert run(model, tmp_path / "in", "-o", tmp_path / "out") == 1

    assert {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()} == first
    captured = capsys.readouterr()
    for name in GOOD:
        target = tmp_path / "out" / f"{Path(name).stem}.png"
        assert f"colorize: skipped {tmp_path / 'in' / name}: {target} exists (use --overwrite" in captured.err, name
    assert len(captured.err.splitlines()) == len(GOOD)
    assert f"colorized 0 images into {tmp_path / 'out'} ({len(GOOD)} skipped)" in captured.out


def test_a_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_good(tmp_path / "in")
    missing = tmp_path / "data" / "models" / "generator.pt"

    assert run(missing, tmp_path / "in", "-o", tmp_path / "out") == 2

    err = capsys.readouterr().err
    assert err == f"colorize: error: model {missing} not found: train one first (dvc repro)\n"
    assert not (tmp_path / "out").exists()


def _torch_bytes(payload: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("content", [os.urandom(2048), _torch_bytes({"weights": 1})], ids=["random-bytes", "no-format-key"])
def test_an_invalid_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    write_good(tmp_path / "in")
    model = tmp_path / "generator.pt"
    model.write_bytes(content)

    assert run(model, tmp_path / "in", "-o", tmp_path / "out") == 2

    err = capsys.readouterr().err
    assert err.startswith(f"colorize: error: cannot load model {model}") and err.count("\n") == 1



@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("other_architecture", "the weights do not fit the architecture the file describes (Error(s) in loading state_dict"),
        ("missing_key", "the weights do not fit the architecture the file describes (Error(s) in loading state_dict"),
        ("extra_key", "the weights do not fit the architecture the file describes (Error(s) in loading state_dict"),
        ("unknown_config_key", "the weights do not fit the architecture the file describes (generator.heads: unknown key)"),
        ("runs_code", "is not a generator saved by this pipeline (refused: it holds more than tensors and plain data"),
    ],
)
def test_a_model_file_that_does_not_fit_or_would_run_code_is_exit_2_in_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, reason: str
) -> None:
    write_good(tmp_path / "in")
    marker = tmp_path / "marker"
    payload = torch.load(model, weights_only=True)
    weights = dict(payload["state_dict"])
    if change == "other_architecture":
        payload["generator"] = {**payload["generator"], "base_filters": 16}
    elif change == "missing_key":
        weights.pop(next(iter(weights)))
    elif change == "extra_key":
        weights["extra.weight"] = torch.zeros(1)
    elif change == "unknown_config_key":
        payload["generator"] = {**payload["generator"], "heads": 4}
    else:
        payload["info"] = WritesMarker(marker)
    bad = tmp_path / "generator.pt"
    bad.write_bytes(_torch_bytes({**payload, "state_dict": weights}))

    assert run(bad, tmp_path / "in", "-o", tmp_path / "out") == 2

    err = capsys.readouterr().err
    assert err.startswith(f"colorize: error: cannot load model {bad}: ") and reason in err and err.count("\n") == 1, err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_split_shard_gives_its_gray_inputs_and_a_hostile_shard_is_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = tiny_split(tmp_path / "split", {"train": 3, "test": 2}, "shards")

    assert run(model, split / "test", split / "train" / "sky-00000.tar", "-o", tmp_path / "out") == 0

    assert sorted(os.listdir(tmp_path / "out")) == ["sky_test00.png", "sky_test01.png", "sky_train00.png", "sky_train01.png", "sky_train02.png"]
    assert Image.open(tmp_path / "out" / "sky_test01.png").size == (32, 32)
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(hostile, "w") as tar:
        link = tarfile.TarInfo("evil.x.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    capsys.readouterr()
    assert run(model, hostile, "-o", tmp_path / "out2") == 2
    assert capsys.readouterr().err == f"colorize: error: {hostile}: member 'evil.x.png': not a regular file (a link, device or folder)\n"
    assert not (tmp_path / "out2").exists()


def test_no_input_images_is_an_error(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()

    assert run(model, tmp_path / "empty", "-o", tmp_path / "out") == 2

    assert capsys.readouterr().err.startswith("colorize: error: no input images")


def test_a_missing_input_is_an_error(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(model, tmp_path / "nope.jpg", "-o", tmp_path / "out") == 2

    assert capsys.readouterr().err == f"colorize: error: input {tmp_path / 'nope.jpg'} not found\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_is_an_error(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_good(tmp_path / "in")

    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--device", "cuda"]) == 2

    assert "--device: 'cuda': this machine has no CUDA device" in capsys.readouterr().err


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "the following arguments are required" in capsys.readouterr().err

    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    assert "usage: colorize" in help_text and "example:" in help_text and "data/models/generator.pt" in help_text
    assert "--overwrite" in help_text


def test_colorize_loads_the_model_code_alone() -> None:
    """`colorize` rebuilds the generator from its file: it imports no image source (nor the scraper's library), no
    params file loader and no data stage."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline.model.colorize_cli", "--help"], capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert {"pipeline.model.colorizer", "pipeline.model.networks"} <= imported  # it records
    assert sorted(name for name in imported if name.startswith(("pipeline.dataset", "pipeline.config", "bing_image_downloader", "prefect"))) == []
