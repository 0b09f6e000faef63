"""Pictures in the Prefect UI: image files as markdown artifacts, embedded (the UI needs no access to the files)."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from PIL import Image
from prefect.artifacts import create_markdown_artifact

MAX_PIXELS = 1_500_000  # a picture is scaled down to this many pixels at most: a few hundred kB in the artifact
JPEG_QUALITY = 85


def picture(path: Path, caption: str) -> str:
    """Markdown that shows the image at `path` (as a JPEG data URI), with its caption and file name below."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    scale = min(1.0, math.sqrt(MAX_PIXELS / (rgb.width * rgb.height)))
    if scale < 1:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    encoded = io.BytesIO()
    rgb.save(encoded, "JPEG", quality=JPEG_QUALITY)
    uri = "data:image/jpeg;base64," + base64.b64encode(encoded.getvalue()).decode("ascii")
    return f"![{caption}]({uri})\n\n*{caption}* (`{path}`)\n"


def create_picture_artifact(key: str, title: str, pictures: list[tuple[Path, str]], description: str) -> None:
    """One markdown artifact: a title, then each (image file, caption)."""
    markdown = "\n".join([f"# {title}\n", *(picture(path, caption) for path, caption in pictures)])
    create_markdown_artifact(key=key, markdown=markdown, description=description)
