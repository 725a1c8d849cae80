"""What inspect reports about an image: oriented size, format, hashes, selected EXIF, dominant colour.

The perceptual hash is the DCT pHash (as the `imagehash` library computes it, without numpy): the
image, upright and flattened on white, is reduced to 32x32 grey; a 2-D DCT-II is taken and its 8x8
lowest frequencies compared with their median, one bit each, row by row, first bit highest. Similar
images (resized, recompressed, lightly edited) differ in a few bits; unrelated ones in about half.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from functions.inspect.exif import select_exif
from pipeline.images import Limits, decode, display

HASH_EDGE = 256  # hashes work on a picture this size (JPEGs are even decoded in draft mode near it)
_N, _K = 32, 8  # pHash: DCT of a 32x32 grey image, keep the 8x8 lowest frequencies
_COS = [[math.cos(math.pi * k * (2 * n + 1) / (2 * _N)) for n in range(_N)] for k in range(_K)]


@dataclass(frozen=True)
class Analysis:
    width: int  # after EXIF orientation
    height: int
    format: str
    mode: str
    bytes: int
    sha256: str
    phash: str
    exif: dict[str, Any] = field(default_factory=dict)
    dominant_color: str | None = None
    frames: int = 1


def analyze(data: bytes, limits: Limits | None = None) -> Analysis:
    """Decode safely (raises pipeline.images.RejectedImage) and describe the image."""
    decoded = decode(data, limits, max_edge=HASH_EDGE)
    upright = _shrink(display(decoded, HASH_EDGE), HASH_EDGE)
    width, height = decoded.oriented_size
    return Analysis(
        width=width,
        height=height,
        format=decoded.format,
        mode=decoded.mode,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(upright),
        exif=select_exif(decoded.exif),
        dominant_color=dominant_color(upright),
        frames=decoded.frames,
    )


def phash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 hex digits."""
    grey = _flatten(image).convert("L").resize((_N, _N), Image.Resampling.LANCZOS)
    pixels = grey.tobytes()
    # Separable DCT-II, unnormalised (the scale does not change a comparison with the median):
    # the 8 lowest frequencies of each row, then of each of those 8 columns.
    rows = [[_dot(cos, pixels[r * _N : (r + 1) * _N]) for cos in _COS] for r in range(_N)]
    low = [_dot(_COS[u], [row[v] for row in rows]) for u in range(_K) for v in range(_K)]
    low = [round(c, 6) for c in low]  # float noise (~1e-12) must not decide bits, e.g. of a flat image
    middle = sorted(low)[len(low) // 2 - 1 : len(low) // 2 + 1]
    threshold = sum(middle) / 2  # the median of an even count
    return f"{int(''.join('1' if c > threshold else '0' for c in low), 2):016x}"


def _dot(a: list[float], b: bytes | list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def hamming(a: str, b: str) -> int:
    """How many of the 64 bits two hashes differ in (0: same picture; about 32: unrelated)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def dominant_color(image: Image.Image) -> str | None:
    """The most common colour ("#rrggbb") of the opaque pixels, from an 8-colour median-cut palette."""
    small = image.copy()
    small.thumbnail((64, 64))
    mask = None
    if small.mode == "RGBA":
        mask = small.getchannel("A").point(lambda a: 255 if a >= 128 else 0)
    quantized = small.convert("RGB").quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    counts = quantized.histogram(mask)
    if not any(counts):
        return None  # fully transparent
    index = max(range(len(counts)), key=counts.__getitem__)
    palette = quantized.getpalette() or []
    red, green, blue = palette[index * 3 : index * 3 + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"


def _shrink(image: Image.Image, edge: int) -> Image.Image:
    """At most `edge` on the long side, so both hashes work on the same small picture for any format."""
    if max(image.size) <= edge:
        return image
    scale = edge / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image
    background = Image.new("RGB", image.size, "white")
    background.paste(image, mask=image.getchannel("A"))
    return background
