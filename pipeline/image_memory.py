"""How much memory decoding and processing one image takes, known from its header before decoding.

The model, in bytes (measured with the bombs of tests/security/test_image_memory.py):

    need = file bytes x FILE_COPIES + max(loading, working)
    loading = the decoder's own buffers + the decoded image
    working = what the decoder keeps + the decoded image + the full-size copy made before it can be
              reduced + the reduced image x CHAIN_BYTES_PER_PIXEL

- The decoded image takes Pillow's bytes per pixel for its mode: 1 for L, P and 1; 2 for 16-bit
  greys; 4 for everything else (RGB is stored in 4 bytes a pixel, as are LA, CMYK, I and F). A JPEG
  decoded in draft mode counts at its reduced size, 16-bit colour PNGs count as the 8-bit image
  Pillow makes of them.
- Decoders' own buffers: a progressive JPEG keeps every DCT coefficient of the whole image (2 bytes a
  sample, whatever the draft scale); WebP decodes into two canvases it keeps and hands the frame
  over as bytes (8 + 4 bytes a pixel); a TIFF strip or tile is read whole; AVIF/HEIF count as WebP.
- Before an image can be reduced (pipeline.images.display), a palette becomes RGB(A), a bilevel
  image L, a colour key alpha, and LA/RGBA are premultiplied: a full-size copy each.
- After the reduction, upright turning, colour conversion and resizing hold up to two more images of
  the reduced size at once (CHAIN_BYTES_PER_PIXEL).
Only the first frame of an animated image is decoded, so frames add nothing here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

FILE_COPIES = 2  # the object as read, and a decoder's copy of it (WebP's, TIFF strips)
CHAIN_BYTES_PER_PIXEL = 8
REDUCE_GAP = 3.0  # reduce by an integer factor while the result stays this many times the target
COEFFICIENT_BYTES = 2  # libjpeg's JCOEF
WEBP_LOADING_BYTES = 12  # libwebp's two canvases (current, previous) and the frame's bytes for Pillow
WEBP_KEPT_BYTES = 8  # the canvases, kept as long as the image is open
_ONE_BYTE_MODES = ("1", "L", "P")
_STRIP_TAGS = (278, 322, 323)  # RowsPerStrip, TileWidth, TileLength


@dataclass(frozen=True)
class MemoryPlan:
    need: int  # bytes at the peak
    pixels: int  # the stored image's pixels, for the advice in a refusal


def bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow stores per pixel of `mode`."""
    if mode in _ONE_BYTE_MODES:
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def before_reduce_bytes(mode: str, transparent: bool) -> int:
    """Bytes per pixel of the full-size copy made before an image of `mode` can be reduced."""
    if mode == "PA" or (transparent and mode in ("P", "L", "RGB")):
        return 8  # to RGBA, then premultiplied for reducing (the original is closed by then)
    if mode == "P":
        return 4  # to RGB, stored in 4 bytes
    if mode == "1":
        return 1  # to L
    if mode in ("LA", "RGBA"):
        return 4  # premultiplied for reducing (Image.reduce does it)
    return 0


def reduce_factor(size: tuple[int, int], max_edge: int | None) -> int:
    """The integer factor pipeline.images.display reduces by before anything else (1: none)."""
    if not max_edge:
        return 1
    return max(1, int(max(size) / (max_edge * REDUCE_GAP)))


def plan(im: Image.Image, stored: tuple[int, int], data_bytes: int, max_edge: int | None) -> MemoryPlan:
    """The bytes decoding `im` (opened, draft already set) and processing it for `max_edge` takes."""
    width, height = im.size
    pixels = width * height
    decoded = pixels * bytes_per_pixel(im.mode)
    transparent = "transparency" in im.info
    before_reduce = pixels * before_reduce_bytes(im.mode, transparent)
    factor = reduce_factor(im.size, max_edge)
    reduced = math.ceil(width / factor) * math.ceil(height / factor)
    loading_extra, kept_extra = _decoder_bytes(im, stored)
    loading = loading_extra + decoded
    working = kept_extra + decoded + before_reduce + reduced * CHAIN_BYTES_PER_PIXEL
    return MemoryPlan(data_bytes * FILE_COPIES + max(loading, working), stored[0] * stored[1])


def _decoder_bytes(im: Image.Image, stored: tuple[int, int]) -> tuple[int, int]:
    """(while loading, kept after) bytes the decoder itself holds, beyond the decoded image."""
    pixels = stored[0] * stored[1]
    if im.format in ("JPEG", "MPO") and ("progressive" in im.info or "progression" in im.info):
        coefficients = _jpeg_coefficients(im, stored)
        return coefficients, 0
    if im.format in ("WEBP", "AVIF", "HEIF"):
        return pixels * WEBP_LOADING_BYTES, pixels * WEBP_KEPT_BYTES
    if im.format == "TIFF":
        return _tiff_strip_bytes(im, stored), 0
    return 0, 0


def _jpeg_coefficients(im: Image.Image, stored: tuple[int, int]) -> int:
    layers = getattr(im, "layer", None) or [("", 1, 1, 0)]
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)
    blocks_wide = math.ceil(stored[0] / (8 * h_max)) * 8 * h_max
    blocks_high = math.ceil(stored[1] / (8 * v_max)) * 8 * v_max
    samples = sum(blocks_wide * blocks_high * h * v // (h_max * v_max) for _, h, v, *_ in layers)
    return samples * COEFFICIENT_BYTES


def _tiff_strip_bytes(im: Image.Image, stored: tuple[int, int]) -> int:
    tags = getattr(im, "tag_v2", {})
    rows_per_strip, tile_width, tile_height = (_first(tags.get(tag)) for tag in _STRIP_TAGS)
    row_bytes = stored[0] * bytes_per_pixel(im.mode)
    if tile_width and tile_height:
        return tile_width * tile_height * bytes_per_pixel(im.mode)
    return row_bytes * min(rows_per_strip or stored[1], stored[1])


def _first(value: object) -> int:
    if isinstance(value, tuple | list):
        value = value[0] if value else 0
    return value if isinstance(value, int) and value > 0 else 0
