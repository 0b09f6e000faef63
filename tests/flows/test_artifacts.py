"""Pictures embedded in Prefect artifacts stay within the byte budget that keeps the artifact's event publishable."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from flows.artifacts import pictures


def test_pictures_share_the_budget_and_each_still_shows_its_image(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name, size in (("noise", (1200, 900)), ("tall", (200, 20000)), ("small", (64, 64))):
        path = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    markdown = pictures([(path, f"caption {path.stem}") for path in paths], max_bytes=300_000)
    uris = re.findall(r"\((data:image/jpeg;base64,[^)]+)\)", markdown)
    assert len(uris) == 3 and all(len(uri) <= 100_000 for uri in uris)
    shown = [Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) for uri in uris]
    assert shown[2].size == (64, 64)  # small enough already: left as it is
    assert abs(shown[0].width / shown[0].height - 4 / 3) < 0.02
    assert 10 < shown[1].width < 200 and shown[1].height > 1000  # scaled down, its shape kept
    assert all(f"*caption {path.stem}* (`{path}`)" in markdown for path in paths)
