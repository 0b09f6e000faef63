"""The `colorize` command: files and folders in, one PNG per readable image out, clear exit codes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.colorize_cli import main
from pipeline.colorizer import save_generator
from pipeline.lab import LabNormalization
from pipeline.networks import GeneratorConfig, define_generator
from tests.images import colorful, encode

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = GeneratorConfig(base_filters=8, depth=3)
    path = tmp_path_factory.mktemp("model") / "generator.pt"
    save_generator(path, define_generator(config).eval(), config, LabNormalization(), 32, {})
    return path


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


def test_a_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_good(tmp_path / "in")
    missing = tmp_path / "data" / "models" / "generator.pt"

    assert run(missing, tmp_path / "in", "-o", tmp_path / "out") == 2

    err = capsys.readouterr().err
    assert err == f"colorize: error: model {missing} not found: run `dvc repro` first or pass --model\n"
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

    assert "--device cuda is not available" in capsys.readouterr().err


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "the following arguments are required" in capsys.readouterr().err

    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    assert "usage: colorize" in help_text and "example:" in help_text and "data/models/generator.pt" in help_text
