"""Scene renderers for the synthetic source: colour that follows from structure, so it can be learned.

The sky is deep blue at the top and pales toward the horizon, vegetation is textured green, sand
beige, water blue with waves, suns yellow disks, trunks brown, buildings grey or brick with lit
windows, fruits shaded red/orange/yellow/green spheres. Unknown category names reuse a known scene
with its hues turned by an angle derived from the name.

Canvases are float32 arrays shaped (3, H, W) in 0..1 while drawing (channel-first keeps numpy's
broadcasting fast); renderers return H×W×3 uint8 RGB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from pipeline.core.fsutil import category_slug

Renderer = Callable[[np.random.Generator, int, int], np.ndarray]

# ----------------------------------------------------------------------------------------- palettes

SKY_TOP = [(38, 88, 190), (28, 70, 160), (58, 118, 212), (22, 60, 142)]
SKY_LOW = [(170, 205, 235), (192, 216, 240), (150, 190, 232), (205, 226, 242)]
GRASS = [(72, 142, 50), (92, 160, 58), (60, 122, 40), (112, 166, 68)]
FOLIAGE = [(40, 110, 40), (55, 125, 45), (30, 92, 36), (74, 140, 50)]
SAND = [(226, 202, 152), (216, 190, 140), (236, 214, 170)]
SEA_NEAR = [(20, 70, 130), (14, 92, 138), (24, 104, 150), (16, 84, 110)]
ROCK = [(122, 110, 100), (136, 120, 104), (106, 100, 95), (142, 126, 110)]
TRUNK = [(96, 66, 40), (110, 76, 46), (80, 56, 36)]
SUN = [(255, 236, 120), (255, 220, 90), (255, 244, 160)]
CONCRETE = [(150, 150, 152), (172, 166, 156), (128, 134, 142), (190, 180, 160), (96, 120, 150)]
BRICK = [(164, 72, 52), (176, 92, 60), (142, 62, 46)]
WALL = [(242, 232, 200), (236, 210, 168), (232, 192, 180), (246, 242, 232), (216, 200, 158)]
ROOF = [(172, 62, 40), (150, 72, 50), (122, 62, 46), (186, 86, 56)]
LIT = (252, 212, 110)
GLASS = [(92, 128, 168), (70, 100, 140), (120, 160, 196)]
FRUITS = [(192, 26, 30), (246, 140, 20), (246, 214, 50), (118, 184, 44), (102, 36, 92), (226, 70, 40)]
WOOD = [(142, 96, 56), (120, 80, 46), (160, 112, 70)]
CLOTH = [(236, 234, 224), (64, 92, 150), (200, 196, 176)]

# ------------------------------------------------------------------------------- drawing primitives
# Large temporaries are costly (fresh pages), so painting works one channel plane at a time, in place.


def _pick(rng: np.random.Generator, options: list) -> tuple:
    return options[int(rng.integers(len(options)))]


def _color(rng: np.random.Generator, base: tuple[int, int, int], spread: float = 0.05) -> np.ndarray:
    """A palette colour varied by ±spread per channel, shaped (3, 1, 1) in 0..1."""
    value = np.asarray(base, np.float32) / 255 + rng.uniform(-spread, spread, 3).astype(np.float32)
    return np.clip(value, 0, 1).reshape(3, 1, 1)


def _rows(stop: float, start: float = 0) -> np.ndarray:
    """Pixel-centre row coordinates start..stop as a column."""
    return np.arange(int(start), int(stop), dtype=np.float32)[:, None] + 0.5


def _cols(stop: float, start: float = 0) -> np.ndarray:
    """Pixel-centre column coordinates start..stop as a row."""
    return np.arange(int(start), int(stop), dtype=np.float32)[None, :] + 0.5


def _resize(plane: np.ndarray, h: int, w: int, resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    return np.asarray(Image.fromarray(plane).resize((w, h), resample))


def _noise(rng: np.random.Generator, h: int, w: int, cell_y: float, cell_x: float | None = None) -> np.ndarray:
    """Smooth value noise in about 0..1 (h×w): random values every cell_y rows and cell_x columns."""
    cell_x = cell_y if cell_x is None else cell_x
    grid = rng.random((int(h / max(cell_y, 1)) + 2, int(w / max(cell_x, 1)) + 2), dtype=np.float32)
    return _resize(grid, h, w)


def _fbm(rng: np.random.Generator, h: int, w: int, cell_y: float, cell_x: float | None = None,
         octaves: int = 3) -> np.ndarray:
    """Fractal noise in about 0..1: octaves of value noise, each with half the cell size and weight.

    The octaves are summed at a reduced size (the finest cells two pixels wide) and upsampled once.
    """
    cell_x = cell_y if cell_x is None else cell_x
    step = max(1.0, min(cell_y, cell_x) / 2**octaves)
    small_h, small_w = max(2, round(h / step)), max(2, round(w / step))
    total = np.zeros((small_h, small_w), np.float32)
    for octave in range(octaves):
        scale = step * 2**octave
        total += _noise(rng, small_h, small_w, cell_y / scale, cell_x / scale) / 2**octave
    total /= 2 - 2 / 2**octaves
    return total if (small_h, small_w) == (h, w) else _resize(total, h, w, Image.Resampling.BILINEAR)


def _curve(rng: np.random.Generator, n: int, cell: float, amp: float, smooth: bool = True) -> np.ndarray:
    """n values of a random line in ±amp through knots every `cell` samples, eased or straight between."""
    knots = rng.uniform(-amp, amp, int(n / max(cell, 1)) + 2)
    position = np.arange(n) / max(cell, 1)
    index = position.astype(int)
    t = position - index
    if smooth:
        t = t * t * (3 - 2 * t)
    return (knots[index] * (1 - t) + knots[index + 1] * t).astype(np.float32)


def _ridge(rng: np.random.Generator, w: int, base: float, amp: float, cell: float, octaves: int = 3,
           smooth: bool = False) -> np.ndarray:
    """A skyline row per column: `base` plus octaves of random line (jagged unless smooth)."""
    return base + sum(_curve(rng, w, cell / 2**o, amp / 2**o, smooth) for o in range(octaves))


def _shading(texture: np.ndarray, amount: float) -> np.ndarray:
    """A brightness factor around 1 from a 0..1 texture."""
    return 1 + amount * (texture - 0.5)


def _vertical(h: int, w: int, stops: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """A new canvas whose colour changes down the rows through (row, colour) stops."""
    rows = _rows(h)[:, 0]
    where = [row for row, _ in stops]
    img = np.empty((3, h, w), np.float32)
    for k in range(3):
        img[k] = np.interp(rows, where, [float(color[k, 0, 0]) for _, color in stops])[:, None]
    return img


def _blend(region: np.ndarray, mask: np.ndarray | float, color: np.ndarray, shade: np.ndarray | None = None) -> None:
    """Mix `color` (times an optional h×w `shade`) into a canvas region in place, by `mask` (0..1 or bool).

    Arithmetic blending is several times faster than masked assignment (np.where, np.copyto).
    """
    for k in range(3):
        plane = region[k]
        change = (color[k] if shade is None else color[k] * shade) - plane
        change *= mask
        plane += change


def _frac(values: np.ndarray) -> np.ndarray:
    """The fractional part (much faster than `% 1` on large arrays)."""
    return values - np.floor(values)


def _below(img: np.ndarray, line: np.ndarray, color: np.ndarray, shade: np.ndarray | None = None) -> None:
    """Paint every pixel below a per-column line (a row number), anti-aliased, shaded by an h×w map."""
    h = img.shape[1]
    top = int(np.clip(line.min(), 0, h))
    mask = np.clip(_rows(h, top) - line + 0.5, 0, 1)
    _blend(img[:, top:], mask, color, None if shade is None else shade[top:])


def _rect(img: np.ndarray, y0: float, y1: float, x0: float, x1: float, color: np.ndarray) -> None:
    h, w = img.shape[1:]
    img[:, max(0, int(y0)):min(h, int(y1)), max(0, int(x0)):min(w, int(x1))] = color


def _box(img: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice] | None:
    """Row and column slices of the canvas around a centre, or None when that box is off the canvas."""
    h, w = img.shape[1:]
    y0, y1 = int(min(max(cy - ry - 1, 0), h)), int(min(max(cy + ry + 2, 0), h))
    x0, x1 = int(min(max(cx - rx - 1, 0), w)), int(min(max(cx + rx + 2, 0), w))
    return (slice(y0, y1), slice(x0, x1)) if y0 < y1 and x0 < x1 else None


def _disk(img: np.ndarray, cx: float, cy: float, r: float, color: np.ndarray, glow: float = 0.0,
          squash: float = 1.0, opacity: float = 1.0) -> None:
    """An anti-aliased disk (an ellipse if squashed vertically), optionally with a soft halo."""
    reach = r * (1 + 3 * glow)
    box = _box(img, cx, cy, reach, reach * squash)
    if box is None:
        return
    d = np.hypot((_rows(box[0].stop, box[0].start) - cy) / squash, _cols(box[1].stop, box[1].start) - cx)
    mask = np.clip(r - d + 0.5, 0, 1)
    if glow:
        mask = np.maximum(mask, 0.6 * np.exp(-np.maximum(d - r, 0) / (r * glow)))
    _blend(img[:, box[0], box[1]], mask * opacity, color)


def _sphere(img: np.ndarray, cx: float, cy: float, r: float, color: np.ndarray, stretch: float = 1.0) -> None:
    """A shaded ball lit from the upper left, with a specular highlight."""
    box = _box(img, cx, cy, r * stretch, r)
    if box is None:
        return
    dy = (_rows(box[0].stop, box[0].start) - cy) / r
    dx = (_cols(box[1].stop, box[1].start) - cx) / (r * stretch)
    radius = np.sqrt(dx * dx + dy * dy)
    light = np.clip(-0.45 * dx - 0.55 * dy + 0.7 * np.sqrt(np.clip(1 - radius * radius, 0, 1)), 0, 1)
    fill = color * (0.3 + 0.8 * light) + 0.85 * light**24
    _blend(img[:, box[0], box[1]], np.clip((1 - radius) * r + 0.5, 0, 1), fill)


def _finish(img: np.ndarray, rng: np.random.Generator, grain: float = 0.05) -> np.ndarray:
    """Add fine luminance grain and return the canvas as H×W×3 uint8."""
    h, w = img.shape[1:]
    scale = _shading(rng.random((h, w), dtype=np.float32), grain) * 255
    rgb = np.empty((h, w, 3), np.uint8)
    for k in range(3):
        plane = img[k]
        plane *= scale
        rgb[..., k] = np.clip(plane, 0, 255, out=plane)
    return rgb


# ------------------------------------------------------------------------------------ scene parts


def _sky(rng: np.random.Generator, h: int, w: int, horizon: float, cover: float | None = None) -> np.ndarray:
    """A canvas of sky, deep blue at the top and pale toward the horizon row, with clouds above it."""
    top, low = _color(rng, _pick(rng, SKY_TOP)), _color(rng, _pick(rng, SKY_LOW))
    img = _vertical(h, w, [(0, top), (max(horizon, 1), low)])
    _clouds(img, rng, int(horizon), rng.uniform(0.05, 0.6) if cover is None else cover,
            _color(rng, (250, 250, 252), 0.02))
    return img


def _clouds(img: np.ndarray, rng: np.random.Generator, bottom: int, cover: float, color: np.ndarray) -> None:
    """Clouds above `bottom`, wider than tall, shaded grey underneath; `cover` is 0..1."""
    h, w = img.shape[1:]
    bottom = min(bottom, h)
    if bottom < 2 or cover <= 0:
        return
    cell = w / rng.uniform(1.5, 4)
    density = _fbm(rng, bottom, w, cell / rng.uniform(1.5, 3), cell, octaves=4) - 0.62 + 0.3 * cover
    _blend(img[:, :bottom], np.clip(density * 7, 0, 1), color, 0.72 + 0.28 * np.clip(density * 3 + 0.2, 0, 1))


def _hills(img: np.ndarray, rng: np.random.Generator, top: float, bottom: float, palette: list,
           texture: np.ndarray, layers: int) -> None:
    """Rolling layers between two rows, farther ones higher and hazier (mixed with the sky at `top`)."""
    h, w = img.shape[1:]
    haze_color = img[:, int(np.clip(top, 0, h - 1))].mean(1).reshape(3, 1, 1)
    for layer in range(layers):
        line = _ridge(rng, w, top + (bottom - top) * layer / layers, h * rng.uniform(0.02, 0.08),
                      w / rng.uniform(1, 3), 2, smooth=True)
        haze = 0.35 * (1 - (layer + 1) / layers)
        color = _color(rng, _pick(rng, palette)) * (1 - haze) + haze * haze_color
        _below(img, line, color, _shading(texture, 0.5))


def _mountains(img: np.ndarray, rng: np.random.Generator, base: float, peak: float, texture: np.ndarray,
               snow: bool) -> None:
    """A jagged rocky ridge from row `peak` down to `base`, lit on left-facing slopes, maybe snow-capped."""
    h, w = img.shape[1:]
    line = _ridge(rng, w, (base + peak) / 2, (base - peak) / 2, w / rng.uniform(1.5, 4), 4)
    top = int(min(max(line.min(), 0), h))
    rows = _rows(h, top)
    below_ridge = np.clip((rows - line) / (base - line.min() + 1), 0, 1)
    facing = np.clip(0.5 + np.gradient(line) * 0.6, 0, 1)
    side = _shading(facing + (0.5 - facing) * below_ridge, 0.5)
    region = img[:, top:]
    inside = np.clip(rows - line + 0.5, 0, 1)
    _blend(region, inside, _color(rng, _pick(rng, ROCK)), side * _shading(texture[top:], 0.6))
    if snow:
        snowline = line.min() + (base - line.min()) * rng.uniform(0.25, 0.5) + _curve(rng, w, w / 12, h * 0.03)
        cap = inside * np.clip((snowline - rows) / 3 + texture[top:] * 2 - 1, 0, 1)
        _blend(region, cap, _color(rng, (236, 242, 250), 0.02), side)


def _tree(img: np.ndarray, rng: np.random.Generator, x: float, ground: float, size: float) -> None:
    """A round-crowned tree: brown trunk and a few shaded green balls."""
    _rect(img, ground - size * 1.1, ground, x - size * 0.08, x + size * 0.08, _color(rng, _pick(rng, TRUNK)))
    leaves = _color(rng, _pick(rng, FOLIAGE))
    for _ in range(int(rng.integers(3, 6))):
        _sphere(img, x + rng.uniform(-0.35, 0.35) * size, ground - size * rng.uniform(1.1, 1.6),
                size * rng.uniform(0.35, 0.55), leaves * rng.uniform(0.85, 1.15))


def _treeline(img: np.ndarray, rng: np.random.Generator, base: float, height: float, color: np.ndarray,
              texture: np.ndarray) -> None:
    """A row of pointed conifers standing on row `base`."""
    w = img.shape[2]
    spacing = rng.uniform(0.3, 0.7) * height
    position = _cols(w)[0] / spacing + rng.uniform(0, 1)
    tooth = 1 - 2 * np.abs(position % 1 - 0.5)
    heights = rng.uniform(0.6, 1.0, int(w / spacing) + 3)[position.astype(int)]
    _below(img, base - height * heights * tooth, color, _shading(texture, 0.5))


def _waves(img: np.ndarray, rng: np.random.Generator, top: int, bottom: int, texture: np.ndarray) -> None:
    """Sea between two rows: hazy at the horizon, deep near the viewer, with perspective wave stripes."""
    h = img.shape[1]
    top, bottom = max(top, 0), min(bottom, h)
    if bottom - top < 2:
        return
    haze = img[:, top - 1 if top else 0].mean(1).reshape(3, 1, 1) * 0.8
    near = _color(rng, _pick(rng, SEA_NEAR))
    depth = (_rows(bottom, top) - top) / (h - top)
    crest = np.sin(rng.uniform(6, 12) * h / (depth * h + 6) + 5 * texture[top:bottom])
    region = img[:, top:bottom]
    weight = np.sqrt(depth)
    for k in range(3):
        region[k] = (haze[k] + (near[k] - haze[k]) * weight) * (1 + 0.16 * crest)
    foam = np.clip((crest - 0.9) * 8, 0, 1) * np.clip(texture[top:bottom] * 3 - 1.4, 0, 1)
    _blend(region, foam, np.full((3, 1, 1), 0.95, np.float32))


def _window_grid(img: np.ndarray, rng: np.random.Generator, y0: float, x0: float, x1: float,
                 cell: tuple[float, float], lit_share: float, glass: np.ndarray) -> None:
    """Windows in a grid over a façade from row y0 down, each either lit yellow or glass."""
    h, w = img.shape[1:]
    y0, x0, x1 = int(max(0, y0)), int(max(0, x0)), int(min(w, x1))
    if h - y0 < 2 or x1 - x0 < 2:
        return
    rows, cols = _rows(h - y0), _cols(x1 - x0)
    pane = ((rows % cell[0]) > cell[0] * 0.35) & ((cols % cell[1]) > cell[1] * 0.3)
    row, col = (rows / cell[0]).astype(int), (cols / cell[1]).astype(int)
    lit = (rng.random((row.max() + 1, col.max() + 1)) < lit_share)[row, col]
    region = img[:, y0:, x0:x1]
    _blend(region, pane, glass, 0.8 + 0.4 * rows / (h - y0))
    _blend(region, pane & lit, _color(rng, LIT, 0.03))


# ------------------------------------------------------------------------------------------ scenes


def _sky_scene(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Mostly sky and clouds, sometimes a sun, over a strip of land."""
    horizon = h * rng.uniform(0.75, 1.05)
    img = _sky(rng, h, w, horizon, cover=rng.uniform(0.2, 0.8))
    if rng.random() < 0.5:
        _disk(img, w * rng.uniform(0.1, 0.9), horizon * rng.uniform(0.1, 0.6), min(h, w) * rng.uniform(0.04, 0.08),
              _color(rng, _pick(rng, SUN)), glow=0.8)
    _hills(img, rng, horizon, horizon + h * 0.05, GRASS, _fbm(rng, h, w, w / 6), 1)
    return _finish(img, rng)


def _sunset(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Purple-to-orange sky, a low yellow sun, and sea with a glittering path or dark hills."""
    horizon = int(h * rng.uniform(0.5, 0.8))
    stops = [(0, _color(rng, (62, 46, 110))), (horizon * 0.5, _color(rng, (196, 86, 110))),
             (horizon * 0.85, _color(rng, (246, 146, 64))), (horizon, _color(rng, (252, 202, 110)))]
    img = _vertical(h, w, stops)
    _clouds(img, rng, horizon, rng.uniform(0.1, 0.5), _color(rng, (236, 130, 110)))
    cx, r = w * rng.uniform(0.2, 0.8), min(h, w) * rng.uniform(0.05, 0.1)
    _disk(img, cx, horizon - r * rng.uniform(-0.3, 1.2), r, _color(rng, (255, 214, 96), 0.03), glow=1.0)
    texture = _fbm(rng, h, w, w / 5)
    if rng.random() < 0.5:
        _waves(img, rng, horizon, h, texture)
        glitter = np.clip(_noise(rng, h - horizon, w, 2, w / 40) * 4 - 2.2, 0, 1)
        _blend(img[:, horizon:], glitter * np.exp(-np.abs(_cols(w) - cx) / (r * 1.5)), _color(rng, (252, 190, 90)))
    else:
        _hills(img, rng, horizon, horizon + h * 0.1, [(56, 34, 48), (40, 30, 44)], texture, 2)
    return _finish(img, rng)


def _ocean(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Open sea under a blue sky: lighter at the horizon, deep blue and wavy near the viewer."""
    horizon = int(h * rng.uniform(0.25, 0.6))
    img = _sky(rng, h, w, horizon)
    _waves(img, rng, horizon, h, _fbm(rng, h, w, w / rng.uniform(3, 8)))
    return _finish(img, rng)


def _beach(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Sky, a band of sea, white surf along the shore and beige rippled sand."""
    horizon = int(h * rng.uniform(0.2, 0.5))
    img = _sky(rng, h, w, horizon)
    texture = _fbm(rng, h, w, w / 6)
    shore = horizon + (h - horizon) * rng.uniform(0.2, 0.6) + _curve(rng, w, w / 4, h * 0.04)
    _waves(img, rng, horizon, int(shore.max()) + 2, texture)
    sand = _color(rng, _pick(rng, SAND))
    grain = _shading(texture, 0.3)
    _below(img, shore, _color(rng, (245, 248, 248), 0.02))
    _below(img, shore + h * rng.uniform(0.01, 0.03), sand * 0.85, grain)
    ripples = 1 + 0.06 * np.sin(_rows(h) * rng.uniform(0.3, 0.6) + texture * 12)
    _below(img, shore + h * rng.uniform(0.05, 0.09), sand, grain * ripples)
    return _finish(img, rng)


def _desert(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Clear pale sky over orange-beige dunes, lit on one flank and shaded on the other."""
    horizon = h * rng.uniform(0.3, 0.6)
    img = _sky(rng, h, w, horizon, cover=rng.uniform(0, 0.2))
    texture = _fbm(rng, h, w, w / 4)
    ripples = _shading(texture, 0.25) * (1 + 0.05 * np.sin(_rows(h) * 0.5 + texture * 20))
    for layer in range(int(rng.integers(2, 4))):
        line = _ridge(rng, w, horizon + (h - horizon) * layer * 0.3, h * 0.06, w / rng.uniform(1, 2.5), 2, smooth=True)
        side = _shading(np.clip(0.5 - np.gradient(line) * 0.8, 0, 1), 0.6)
        sand = _color(rng, _pick(rng, [(222, 170, 110), (232, 190, 130), (206, 150, 96)]))
        _below(img, line, sand, side * ripples)
    return _finish(img, rng)


def _landscape(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Sky, hazy blue-grey mountains far away, rolling green and yellow-green hills, a few trees."""
    horizon = h * rng.uniform(0.3, 0.6)
    img = _sky(rng, h, w, horizon)
    texture = _fbm(rng, h, w, w / 5)
    if rng.random() < 0.6:
        _mountains(img, rng, horizon + h * 0.05, horizon - h * rng.uniform(0.1, 0.25), texture, rng.random() < 0.4)
    _hills(img, rng, horizon, h * rng.uniform(0.7, 0.9), GRASS + [(150, 170, 70), (170, 176, 90)], texture,
           int(rng.integers(2, 5)))
    for _ in range(int(rng.integers(0, 5))):
        _tree(img, rng, w * rng.uniform(0, 1), h * rng.uniform(0.75, 1.0), h * rng.uniform(0.06, 0.14))
    return _finish(img, rng)


def _mountains_scene(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Ranges of snow-capped grey-brown peaks, nearer ones lower, above a green valley or pines."""
    horizon = h * rng.uniform(0.5, 0.75)
    img = _sky(rng, h, w, horizon, cover=rng.uniform(0, 0.4))
    texture = _fbm(rng, h, w, w / 8)
    for i in range(int(rng.integers(1, 4))):
        _mountains(img, rng, horizon + i * h * 0.05, h * rng.uniform(0.08, 0.35) + i * h * 0.08, texture,
                   snow=rng.random() < 0.8)
    if rng.random() < 0.5:
        _treeline(img, rng, h * rng.uniform(0.9, 1.05), h * rng.uniform(0.15, 0.35),
                  _color(rng, (34, 72, 40)), texture)
    else:
        _hills(img, rng, horizon + h * 0.1, h * 0.95, GRASS, texture, 2)
    return _finish(img, rng)


def _forest(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A wood: a green canopy with sky showing through over brown trunks, or rows of dark conifers."""
    texture = _fbm(rng, h, w, w / 6)
    ground = h * rng.uniform(0.65, 0.85)
    img = _sky(rng, h, w, ground, cover=0.1)
    if rng.random() < 0.5:
        for layer, shade in enumerate((0.8, 0.6, 0.45)):
            _treeline(img, rng, ground + h * 0.12 * layer, h * rng.uniform(0.3, 0.6),
                      _color(rng, _pick(rng, FOLIAGE)) * shade, texture)
        return _finish(img, rng)
    _below(img, np.full(w, ground, np.float32), _color(rng, (92, 84, 44)), _shading(texture, 0.8))
    for _ in range(int(rng.integers(5, 14))):
        x, half = w * rng.uniform(0, 1), w * rng.uniform(0.015, 0.05)
        _rect(img, 0, ground + h * rng.uniform(0, 0.2), x - half, x + half,
              _color(rng, _pick(rng, TRUNK)) * rng.uniform(0.6, 1.1))
    leaves = _fbm(rng, h, w, w / 10)
    reach = h * rng.uniform(0.25, 0.5) * (1 - _rows(h) / h)
    canopy = np.clip((leaves * h * 0.8 + reach - _rows(h) * 0.6) / 8, 0, 1) * np.clip((leaves - 0.35) * 6, 0, 1)
    _blend(img, canopy, _color(rng, _pick(rng, FOLIAGE)), _shading(leaves, 1.2))
    return _finish(img, rng)


def _nature(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A meadow full of wild flowers under the sky, with a treeline and a few trees."""
    horizon = h * rng.uniform(0.25, 0.55)
    img = _sky(rng, h, w, horizon)
    texture = _fbm(rng, h, w, w / 6)
    _treeline(img, rng, horizon + h * 0.04, h * rng.uniform(0.05, 0.15), _color(rng, (46, 96, 44)), texture)
    blades = _noise(rng, h, w, 12, 2)
    _below(img, np.full(w, horizon + h * 0.03, np.float32), _color(rng, _pick(rng, GRASS)),
           _shading(texture, 0.4) * _shading(blades, 0.5))
    _flowers(img, rng, horizon)
    for _ in range(int(rng.integers(0, 3))):
        _tree(img, rng, w * rng.uniform(0, 1), horizon + h * rng.uniform(0.1, 0.3), h * rng.uniform(0.1, 0.2))
    return _finish(img, rng)


def _flowers(img: np.ndarray, rng: np.random.Generator, horizon: float) -> None:
    """Red, yellow, purple and white dots on the grass, larger toward the viewer."""
    h, w = img.shape[1:]
    count = int(w * h / rng.uniform(200, 600))
    depth = rng.uniform(0.1, 1, count) ** 2
    ys, xs = (horizon + (h - horizon) * depth).astype(int), rng.integers(0, w, count)
    petals = np.asarray([(230, 40, 50), (250, 220, 60), (150, 80, 200), (250, 250, 245)], np.float32) / 255
    colors = petals[rng.integers(0, len(petals), count)].T
    radius = 1 + (depth * 3).astype(int)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            near = dy * dy + dx * dx < radius * radius
            img[:, np.clip(ys[near] + dy, 0, h - 1), np.clip(xs[near] + dx, 0, w - 1)] = colors[:, near]


def _waterfall(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A white, streaked fall between brown-grey cliffs with green moss, into a blue-green pool."""
    top = h * rng.uniform(0.0, 0.25)
    img = _sky(rng, h, w, max(top, 1))
    texture = _fbm(rng, h, w, w / 6)
    strata = 1 + 0.12 * np.sin(_rows(h) * rng.uniform(0.08, 0.2) + texture * 8)
    _below(img, top + _curve(rng, w, w / 6, h * 0.05), _color(rng, _pick(rng, ROCK)),
           _shading(texture, 0.9) * strata)
    cliff = int(top)
    moss = np.clip((_fbm(rng, h - cliff, w, w / 8) - 0.52) * 8, 0, 1)
    _blend(img[:, cliff:], moss, _color(rng, _pick(rng, FOLIAGE)), _shading(texture[cliff:], 0.8))
    pool = int(h * rng.uniform(0.65, 0.85))
    cx, half = w * rng.uniform(0.3, 0.7), w * rng.uniform(0.06, 0.2)
    x0, x1 = int(max(0, cx - half * 1.3)), int(min(w, cx + half * 1.3))
    edge = half + _curve(rng, pool - cliff, h / 8, w * 0.02)[:, None]
    fall = np.clip(edge - np.abs(_cols(x1, x0) - cx), 0, 1)
    streaks = _shading(_noise(rng, pool - cliff, x1 - x0, h / 2, 2.5), 0.35)
    _blend(img[:, cliff:pool, x0:x1], fall, _color(rng, (210, 232, 244), 0.03), streaks)
    ripples = 1 + 0.12 * np.sin(_rows(h, pool) * 0.9 + texture[pool:] * 10)
    _blend(img[:, pool:], 1.0, _color(rng, (40, 112, 122)), ripples)
    _disk(img, cx, pool, half * 1.3, _color(rng, (236, 244, 246), 0.02), glow=0.4, squash=0.3)
    return _finish(img, rng)


def _city(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A skyline of grey, beige and glass towers with window grids, by day, dusk or night."""
    time_of_day = int(rng.integers(3))
    if time_of_day == 0:
        img = _sky(rng, h, w, h)
    elif time_of_day == 1:
        img = _vertical(h, w, [(0, _color(rng, (70, 60, 130))), (h, _color(rng, (244, 150, 90)))])
    else:
        img = _vertical(h, w, [(0, _color(rng, (12, 18, 50))), (h, _color(rng, (40, 56, 110)))])
    lit, darkness = (0.05, 0.4, 0.6)[time_of_day], (1.0, 0.7, 0.35)[time_of_day]
    x = -w * rng.uniform(0, 0.1)
    while x < w:
        width, roof = w * rng.uniform(0.06, 0.18), h * rng.uniform(0.1, 0.7)
        _rect(img, roof, h, x, x + width - 1, _color(rng, _pick(rng, CONCRETE)) * darkness)
        _window_grid(img, rng, roof + 4, x + 3, x + width - 4, (rng.uniform(8, 16), rng.uniform(6, 12)), lit,
                     _color(rng, _pick(rng, GLASS)) * darkness)
        x += width + w * rng.uniform(-0.02, 0.03)
    return _finish(img, rng)


def _buildings(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Close-up façades side by side: brick, stone or concrete walls with rows of windows."""
    img = _sky(rng, h, w, h * 0.4)
    x = 0.0
    while x < w:
        width, roof = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.0, 0.35)
        if rng.random() < 0.5:
            _bricks(img, rng, int(roof), int(x), int(min(w, x + width)))
        else:
            _rect(img, roof, h, x, x + width, _color(rng, _pick(rng, CONCRETE + WALL)))
        cell = (h * rng.uniform(0.12, 0.22), width * rng.uniform(0.15, 0.3))
        _window_grid(img, rng, roof + cell[0] * 0.3, x, x + width, cell, rng.uniform(0, 0.3),
                     _color(rng, _pick(rng, GLASS)))
        x += width
    return _finish(img, rng)


def _bricks(img: np.ndarray, rng: np.random.Generator, y0: int, x0: int, x1: int) -> None:
    """A red brick wall from row y0 down, with pale mortar lines, each brick a slightly different shade."""
    h = img.shape[1]
    if x1 <= x0 or y0 >= h:
        return
    height, length = rng.uniform(5, 9), rng.uniform(14, 24)
    rows, cols = _rows(h - y0), _cols(x1 - x0)
    course = (rows / height).astype(int)
    shifted = cols + (course % 2) * length / 2
    brick = (shifted / length).astype(int)
    tint = rng.uniform(0.8, 1.15, (course.max() + 1, brick.max() + 1)).astype(np.float32)[course, brick]
    region = img[:, y0:, x0:x1]
    _blend(region, 1.0, _color(rng, _pick(rng, BRICK)), tint)
    _blend(region, ((rows % height) < 1.2) | (_frac(shifted / length) * length < 1.2), _color(rng, (200, 192, 176)))


def _street(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A street in perspective: asphalt with yellow and white markings, pavements and façades either side.

    `slope` (rows below the horizon per column away from the vanishing point) is constant along lines
    that run toward it, so façade tops, kerbs, road edges and window rows are all bands of slope. Each
    side of the street gets its own heights and colours, picked per column by `right` (0 or 1).
    """
    vx, vy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.3, 0.5)
    img = _sky(rng, h, w, vy)
    texture = _fbm(rng, h, w, w / 10)
    right = (_cols(w) > vx).astype(int)
    d = np.abs(_cols(w) - vx) + 0.5
    slope = (_rows(h) - vy) / d
    roofs = -rng.uniform(0.6, 1.8, (2, 12))[right, np.minimum(np.log(d) * 2, 11).astype(int)]
    kerb, road = rng.uniform(0.3, 0.45, 2)[right], rng.uniform(0.5, 0.9, 2)[right]
    walls = np.concatenate([_color(rng, _pick(rng, BRICK + CONCRETE + WALL)) for _ in range(2)], axis=2)
    _blend(img, slope > roofs, walls[:, :, right[0]], _shading(texture, 0.5))
    windows = (_frac(np.log(d) * 7) > 0.45) & (_frac(slope / 0.12) > 0.5) & (slope > roofs + 0.05) \
        & (slope < kerb - 0.05) & (d > w * 0.07)
    _blend(img, windows, _color(rng, _pick(rng, GLASS)))
    _blend(img, slope > kerb, _color(rng, (170, 164, 152)), _shading(texture, 0.3))
    _blend(img, slope > road, _color(rng, (82, 84, 88)), _shading(texture, 0.5))
    _blend(img, np.abs(slope - road * 1.1) < 0.03 * slope, np.full((3, 1, 1), 0.92, np.float32))
    dashes = _frac(rng.uniform(0.3, 0.6) * h / np.maximum(_rows(h) - vy, 1)) < 0.5
    _blend(img, (slope > 1 / rng.uniform(0.02, 0.03)) & dashes, _color(rng, (240, 200, 40)))
    return _finish(img, rng)


def _town(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Rows of small pastel houses with red-brown roofs on green hills, trees between them."""
    horizon = h * rng.uniform(0.25, 0.45)
    img = _sky(rng, h, w, horizon)
    _hills(img, rng, horizon - h * 0.05, horizon + h * 0.1, GRASS, _fbm(rng, h, w, w / 6), 2)
    for row in range(int(rng.integers(2, 5))):
        ground = horizon + (h - horizon) * (0.25 + row * 0.22) + h * rng.uniform(-0.03, 0.03)
        size = h * (0.1 + 0.06 * row) * rng.uniform(0.8, 1.2)
        x = -w * rng.uniform(0, 0.1)
        while x < w:
            width = size * rng.uniform(0.9, 1.6)
            if rng.random() < 0.8:
                _house(img, rng, x, ground, width, size * rng.uniform(0.6, 0.9))
            else:
                _tree(img, rng, x + width / 2, ground, size * 0.6)
            x += width + size * rng.uniform(0.05, 0.4)
    return _finish(img, rng)


def _house(img: np.ndarray, rng: np.random.Generator, x: float, ground: float, width: float, height: float) -> None:
    """A pastel wall under a red-brown pitched roof, with blue windows and a brown door."""
    eaves = ground - height
    _rect(img, eaves, ground, x, x + width, _color(rng, _pick(rng, WALL)))
    apex, reach = eaves - height * rng.uniform(0.4, 0.8), width * 0.58
    box = _box(img, x + width / 2, (apex + eaves) / 2, reach, (eaves - apex) / 2)
    if box is not None:
        rows = _rows(box[0].stop, box[0].start)
        spread = np.clip((rows - apex) / (eaves - apex), 0, 1) * reach
        roof = np.clip(spread - np.abs(_cols(box[1].stop, box[1].start) - (x + width / 2)) + 0.5, 0, 1)
        roof *= rows < eaves
        _blend(img[:, box[0], box[1]], roof, _color(rng, _pick(rng, ROOF)), 1 - 0.15 * ((rows % 5) < 1.5))
    glass = _color(rng, _pick(rng, GLASS))
    for left in (0.15, 0.65):
        _rect(img, eaves + height * 0.2, eaves + height * 0.45, x + width * left, x + width * (left + 0.2), glass)
    _rect(img, ground - height * 0.45, ground, x + width * 0.42, x + width * 0.58, _color(rng, TRUNK[0]))


def _fruit(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Shaded red, orange, yellow, green and purple fruit with highlights and shadows on a table."""
    edge = h * rng.uniform(0.1, 0.45)
    wall = _color(rng, _pick(rng, WALL))
    img = _vertical(h, w, [(0, wall), (edge, wall * 0.8)])
    texture = _fbm(rng, h, w, w / 5)
    table = np.full(w, edge, np.float32)
    if rng.random() < 0.6:
        wood_grain = 1 + 0.15 * np.sin(_rows(h) * rng.uniform(0.2, 0.5) + texture * 14)
        _below(img, table, _color(rng, _pick(rng, WOOD)), wood_grain)
    else:
        _below(img, table, _color(rng, _pick(rng, CLOTH)), _shading(texture, 0.3))
    s = min(h, w)
    fruits = sorted((rng.uniform(edge, h), rng.uniform(0, w), s * rng.uniform(0.08, 0.2))
                    for _ in range(int(rng.integers(3, 9))))
    shadow = np.zeros((3, 1, 1), np.float32)
    for cy, cx, r in fruits:
        _disk(img, cx + r * 0.3, cy + r * 0.8, r * 1.1, shadow, glow=0.3, squash=0.35, opacity=0.5)
        _sphere(img, cx, cy, r, _color(rng, _pick(rng, FRUITS)), stretch=rng.uniform(0.85, 1.15))
        if rng.random() < 0.5:
            _rect(img, cy - r * 1.15, cy - r * 0.85, cx - r * 0.05, cx + r * 0.05, _color(rng, TRUNK[2]))
    return _finish(img, rng)


KNOWN_SCENES: dict[str, Renderer] = {
    "sky": _sky_scene,
    "sunset": _sunset,
    "ocean": _ocean,
    "beach": _beach,
    "desert": _desert,
    "landscape": _landscape,
    "mountains": _mountains_scene,
    "forest": _forest,
    "nature": _nature,
    "waterfall": _waterfall,
    "city": _city,
    "street": _street,
    "buildings": _buildings,
    "town": _town,
    "fruit": _fruit,
}
"""Category name -> renderer(rng, width, height) giving an H×W×3 uint8 scene."""


def render_scene(category: str, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """H×W×3 uint8 RGB scene for the category; unknown names get a style derived from the name."""
    renderer = KNOWN_SCENES.get(category_slug(category))
    if renderer is not None:
        return renderer(rng, width, height)
    base, angle = _unknown_style(category)
    return _rotate_hue(KNOWN_SCENES[base](rng, width, height), angle)


def _unknown_style(category: str) -> tuple[str, float]:
    """A known scene and a hue rotation (radians), both fixed by a SHA-256 of the category's slug."""
    digest = hashlib.sha256(category_slug(category).encode()).digest()
    names = sorted(KNOWN_SCENES)
    return names[digest[0] % len(names)], np.deg2rad(60 + 240 * digest[1] / 255)


def _rotate_hue(rgb: np.ndarray, angle: float) -> np.ndarray:
    """Turn every colour's hue by `angle` in YIQ space, leaving luminance as it is."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    cos, sin = np.cos(angle), np.sin(angle)
    turn = np.array([[1, 0, 0], [0, cos, -sin], [0, sin, cos]])
    matrix = (np.linalg.inv(to_yiq) @ turn @ to_yiq).astype(np.float32)
    return np.clip(rgb.astype(np.float32) @ matrix.T + 0.5, 0, 255).astype(np.uint8)
