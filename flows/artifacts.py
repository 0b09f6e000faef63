"""Pictures in the Prefect UI: image files as markdown artifacts, embedded (the UI needs no access to the files)."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from PIL import Image
from prefect.artifacts import create_markdown_artifact

MAX_PIXELS = 1_500_000  # a picture is scaled down to this many pixels at most
MAX_ARTIFACT_BYTES = 1_000_000  # the pictures of one artifact together, encoded: Prefect refuses events over 1.5 MB
JPEG_QUALITY = 85


def picture(path: Path, caption: str, max_bytes: int = MAX_ARTIFACT_BYTES) -> str:
    """Markdown that shows the image at `path` (as a JPEG data URI of at most `max_bytes`, scaled down as far as that
    takes), with its caption and file name below."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    scale = min(1.0, math.sqrt(MAX_PIXELS / (rgb.width * rgb.height)))
    while True:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        encoded = io.BytesIO()
        (rgb.resize(size, Image.Resampling.LANCZOS) if scale < 1 else rgb).save(encoded, "JPEG", quality=JPEG_QUALITY)
        uri = "data:image/jpeg;base64," + base64.b64encode(encoded.getvalue()).decode("ascii")
        if len(uri) <= max_bytes or size == (1, 1):
            return f"![{caption}]({uri})\n\n*{caption}* (`{path}`)\n"
        scale *= 0.9 * math.sqrt(max_bytes / len(uri))


def pictures(items: list[tuple[Path, str]], max_bytes: int = MAX_ARTIFACT_BYTES) -> str:
    """Markdown of each (image file, caption), sharing `max_bytes` equally."""
    return "\n".join(picture(path, caption, max_bytes // max(1, len(items))) for path, caption in items)


def create_picture_artifact(key: str, title: str, items: list[tuple[Path, str]], description: str) -> None:
    """One markdown artifact: a title, then each (image file, caption)."""
    create_markdown_artifact(key=key, markdown=f"# {title}\n\n{pictures(items)}", description=description)
