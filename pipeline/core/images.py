"""Image measurements shared by the stages: perceptual hash, colorfulness, color beyond a tint."""

from __future__ import annotations

import numpy as np
from PIL import Image

DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)  # what Pillow raises for damaged image files
PNG_LEVEL = 1  # zlib level for the PNGs the stages write: 3-5x faster to encode than the default 6, ~10% larger
_HASH_SIDE = 32
_HASH_BITS_SIDE = 8


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT = _dct_matrix(_HASH_SIDE)


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash: the signs of the lowest 8×8 DCT frequencies of the 32×32 luminance, against their median."""
    gray = image.convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(gray, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:_HASH_BITS_SIDE, :_HASH_BITS_SIDE].ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def ycbcr_cells(image: Image.Image, side: int = 16) -> np.ndarray:
    """side×side×3 float YCbCr (JPEG's transform), box-averaged: at 16, a 32-px 4:2:0 JPEG's own chroma grid."""
    channels = image.convert("YCbCr").split()
    return np.stack([np.asarray(c.convert("F").resize((side, side), Image.Resampling.BOX)) for c in channels], axis=-1)


def color_beyond_tint(cells: np.ndarray) -> float:
    """How much color the cells of ycbcr_cells carry beyond a tint: the 95th percentile of their CbCr distance
    from the best quadratic in Y. About 0 for gray, sepia and duotone (chroma a function of lightness), whatever
    their colorfulness; a tint that JPEG blurred across edges stays on that curve too."""
    luma = cells[..., 0].ravel() / 255
    chroma = cells[..., 1:].reshape(-1, 2).astype(np.float64)
    basis = np.vander(luma, 3)
    fit, *_ = np.linalg.lstsq(basis, chroma, rcond=None)
    return float(np.percentile(np.hypot(*(chroma - basis @ fit).T), 95))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-shape arrays (1.0 when both are flat, 0.0 when one is)."""
    x, y = (np.asarray(v, dtype=np.float64).ravel() for v in (a, b))
    x, y = x - x.mean(), y - y.mean()
    norms = float(np.linalg.norm(x) * np.linalg.norm(y))
    if norms == 0.0:
        return float(not x.any() and not y.any())
    return float(x @ y) / norms


def _opponent(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return r - g, 0.5 * (r + g) - b


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colorfulness of an H×W×3 uint8 image: 0 for gray, ~100+ for vivid. Its second term,
    the mean colour cast, counts a uniform tint as colour: `color_spread` leaves it out."""
    rg, yb = _opponent(rgb)
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def color_spread(rgb: np.ndarray) -> float:
    """How much the colour varies across an H×W×3 uint8 image: the spread term of Hasler & Süsstrunk's colorfulness
    alone (0 for gray and for any uniform tint)."""
    rg, yb = _opponent(rgb)
    return float(np.hypot(rg.std(), yb.std()))


_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: transparency composited on white, 16-bit and float scaled down (not clipped), CMYK/P/1/L converted."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(values / scale + 0.5, 0, 255).astype(np.uint8), "L")
    has_alpha = image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def luminance_gray(image: Image.Image) -> Image.Image:
    """Mode L with the same CIELAB lightness as `image`: its sRGB-encoded relative luminance.

    Unlike Pillow's convert("L") (Rec. 601 luma on gamma-encoded values), a colorizer that keeps this
    L and predicts only a and b can reproduce the original exactly.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    encoded = np.where(luminance <= 0.0031308, 12.92 * luminance, 1.055 * np.maximum(luminance, 0) ** (1 / 2.4) - 0.055)
    return Image.fromarray(np.clip(np.round(encoded * 255), 0, 255).astype(np.uint8), "L")


def image_grid(rows: list[list[Image.Image]], cell: int) -> Image.Image:
    """A contact sheet: each image scaled into a cell×cell square, rows top to bottom, white gaps."""
    gap = max(2, cell // 32)
    columns = max((len(row) for row in rows), default=0)
    sheet = Image.new("RGB", (columns * (cell + gap) + gap, len(rows) * (cell + gap) + gap), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            thumb = image.convert("RGB")
            thumb.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (gap + c * (cell + gap), gap + r * (cell + gap)))
    return sheet
