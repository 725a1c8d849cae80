"""Memory bombs: small files, under the pixel and frame limits, that decode to hundreds of MiB.

PNGs are written row by row (a flat colour compresses to almost nothing; Pillow cannot write 16-bit
RGBA); the others are made with Pillow. Each is built once per test run and cached in memory.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from functools import cache

from PIL import Image

from tests.support.images import encode, scene

PIXEL_LIMIT = 80_000_000  # DATAFROST_MAX_IMAGE_PIXELS' default
AT_LIMIT = (10_000, 8_000)
WEBP_EDGE = 16_383  # the largest edge WebP can store
_PNG_COLOR_TYPES = {"RGBA": 6, "RGB": 2, "L": 0}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def flat_png(size: tuple[int, int], mode: str, depth: int) -> bytes:
    """A flat-colour PNG of `mode` ("RGBA", "RGB", "L") at `depth` bits per sample, row by row."""
    width, height = size
    samples = len(mode) * width
    row = b"\x00" + bytes([0x5A]) * (samples * depth // 8)  # filter 0, then one value repeated
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, _PNG_COLOR_TYPES[mode], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def rgba_png() -> bytes:
    """The issue's bomb: 80 MP of one RGBA colour in about 0.3 MB."""
    return flat_png(AT_LIMIT, "RGBA", 8)


def rgba16_png() -> bytes:
    return flat_png(AT_LIMIT, "RGBA", 16)


def grey16_png() -> bytes:
    return flat_png(AT_LIMIT, "L", 16)


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", AT_LIMIT, (0, 255, 255, 0)), "JPEG", quality=50)


def progressive_jpeg() -> bytes:
    """Progressive, no chroma subsampling: libjpeg keeps every coefficient of the whole image."""
    image = Image.new("RGB", AT_LIMIT, (40, 90, 200))
    return encode(image, "JPEG", quality=50, progressive=True, subsampling=0)


def palette_gif(frames: int = 50) -> bytes:
    """`frames` frames of 80 MP each, palette with a transparent index (to RGBA when shown)."""
    image = Image.new("P", AT_LIMIT, 1)
    image.putpalette([0, 0, 0, 200, 30, 30])
    one = encode(image, "GIF", transparency=0)
    del image
    start = one.index(b"\x21\xf9")  # the first frame: graphic control extension, descriptor, data
    frame = one[start:-1]
    return one[:start] + frame * frames + b";"


def float_tiff(size: tuple[int, int] = AT_LIMIT) -> bytes:
    """32-bit float grey, deflate-compressed, one strip for the whole image."""
    image = Image.new("F", size, 0.5)
    return encode(image, "TIFF", compression="tiff_adobe_deflate", strip_size=2**31 - 1)


def float_tiff_near_budget() -> bytes:
    """50 MP: just under the default memory budget (the strip and the image, 4 bytes a pixel each)."""
    return float_tiff((10_000, 5_000))


def photo_jpeg() -> bytes:
    """A 24 MP camera photo: the README promises it is processed."""
    return encode(scene((6000, 4000)), "JPEG", quality=90)


def rgba_png_12mp() -> bytes:
    """A 12 MP PNG with alpha: the README promises it is processed."""
    return flat_png((4000, 3000), "RGBA", 8)


def webp() -> bytes:
    """Lossless, the longest edge WebP stores, just under the pixel limit."""
    image = Image.new("RGBA", (WEBP_EDGE, PIXEL_LIMIT // WEBP_EDGE), (10, 200, 10, 128))
    return encode(image, "WEBP", lossless=True, quality=0, method=0)


BOMBS: dict[str, Callable[[], bytes]] = {
    "rgba-png": rgba_png,
    "rgba16-png": rgba16_png,
    "grey16-png": grey16_png,
    "cmyk-jpeg": cmyk_jpeg,
    "progressive-jpeg": progressive_jpeg,
    "palette-gif": palette_gif,
    "float-tiff": float_tiff,
    "webp": webp,
    "float-tiff-near-budget": float_tiff_near_budget,
    "photo-jpeg-24mp": photo_jpeg,
    "rgba-png-12mp": rgba_png_12mp,
}


@cache
def bomb(name: str) -> bytes:
    return BOMBS[name]()


def describe(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return f"{image.format} {image.mode} {image.size[0]}x{image.size[1]}, {len(data)} bytes"
