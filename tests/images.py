"""Small image files the tests make themselves."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def colorful(width: int = 96, height: int = 80, seed: int = 0) -> Image.Image:
    """A smooth, colorful RGB image with texture: distinct perceptual hash per seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    image = Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    noise = rng.integers(-8, 9, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()
