"""Real color photos that ship inside scikit-image (no download), never seen in training: an out-of-domain check."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from skimage import data

PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": data.astronaut,
    "chelsea": data.chelsea,
    "coffee": data.coffee,
    "rocket": data.rocket,
    "hubble_deep_field": data.hubble_deep_field,
    "motorcycle": lambda: data.stereo_motorcycle()[0],  # the left view of a stereo pair
}


def real_photos() -> dict[str, Image.Image]:
    """Each photo by name, 8-bit RGB at its full resolution (300 to 1000 px a side)."""
    return {name: Image.fromarray(load()) for name, load in PHOTOS.items()}
