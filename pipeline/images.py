"""Safe image decoding for the functions that read uploads (inspect, thumbnail).

- The format is sniffed from the bytes, never from the name or the declared type, and only an
  allowlist reaches a decoder: JPEG, PNG, WebP, GIF, TIFF, BMP, plus AVIF/HEIF when this Pillow can
  read them.
- The pixel limit is checked from the header before any pixel is decoded, and the frame limit from
  the container's structure (a GIF's frames are counted by walking its blocks, up to the limit).
- The memory decoding and processing will take (pipeline.image_memory: mode, bit depth, the
  decoder's own buffers, the copies processing holds) is checked from the header against the
  function's budget (DATAFROST_IMAGE_MEMORY_BYTES), before any pixel is decoded.
- Only the first frame is decoded, fully (`load()`): truncated or corrupt data fails here.
  `ImageFile.LOAD_TRUNCATED_IMAGES` is never set.
- `display` reduces the decoded image by an integer factor first, then turns and converts the small
  one, closing the decoded image as soon as it is not needed: no full-size copies it can avoid.

Every refusal is a `RejectedImage` whose message says what is wrong in words a person can act on.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, cast

from PIL import Image

from pipeline import image_memory
from shared.settings import (
    DEFAULT_IMAGE_MEMORY_BYTES,
    DEFAULT_MAX_IMAGE_FRAMES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    Settings,
)

if TYPE_CHECKING:
    from PIL import ImageCms

BASE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")
OPTIONAL_FORMATS = ("AVIF", "HEIF")  # allowed only when a Pillow plugin for them is installed
_LABELS = {"WEBP": "WebP"}
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow raises on bad data while parsing headers, seeking or decoding.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


class RejectedImage(ValueError):
    """The content cannot be accepted as an image; str() is the reason, for a person."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_frames: int = DEFAULT_MAX_IMAGE_FRAMES
    max_memory: int = DEFAULT_IMAGE_MEMORY_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_upload_bytes,
            settings.max_image_pixels,
            settings.max_image_frames,
            settings.image_memory_bytes,
        )


@dataclass(frozen=True)
class DecodedImage:
    """The first frame, fully decoded, and what the header said about the stored image."""

    image: Image.Image  # smaller than stored when a JPEG was decoded in draft mode
    format: str  # a Pillow format name from the allowlist (an MPO is reported as JPEG)
    mode: str  # the stored mode, e.g. "CMYK", "I;16", "P"
    width: int  # stored, before EXIF orientation
    height: int
    frames: int
    exif: Image.Exif = field(default_factory=Image.Exif)

    @property
    def orientation(self) -> int:
        """EXIF orientation, 1 (upright) to 8; 1 when missing or invalid."""
        value = self.exif.get(_ORIENTATION)
        if isinstance(value, tuple | list) and value:
            value = value[0]
        return value if isinstance(value, int) and 1 <= value <= 8 else 1

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) as the image is meant to be seen: orientations 5-8 swap them."""
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


@cache
def readable_formats() -> tuple[str, ...]:
    """The allowlist, restricted to what this Pillow can decode (checked at runtime)."""
    Image.init()
    return tuple(f for f in (*BASE_FORMATS, *OPTIONAL_FORMATS) if f in Image.OPEN)


def sniff_format(data: bytes) -> str | None:
    """The allowlisted format the bytes start like, or None. Names and declared types are ignored."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 26:
        return "BMP"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[i : i + 4] for i in range(8, box_end - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def check_size(size: int, limits: Limits) -> None:
    """Refuse an empty file or one over the upload limit (cheap: call it before reading the object)."""
    if size <= 0:
        raise RejectedImage("the file is empty")
    if size > limits.max_bytes:
        raise RejectedImage(f"the file is {_mb(size)} MB, over the {_mb(limits.max_bytes)} MB limit")


def decode(data: bytes, limits: Limits | None = None, max_edge: int | None = None) -> DecodedImage:
    """Check and decode the first frame. With `max_edge`, a JPEG is decoded in draft mode at the
    smallest scale (1/2, 1/4, 1/8) whose longest edge is still at least `max_edge`, and the memory
    budget counts on `display(decoded, max_edge)` being what comes next."""
    limits = limits or Limits()
    check_size(len(data), limits)
    fmt = sniff_format(data)
    if fmt is None:
        raise RejectedImage(f"not an image: the content is not {_allowed()}")
    if fmt not in readable_formats():
        raise RejectedImage(f"{fmt} images cannot be read here: convert it to JPEG or PNG")
    _align_pillow_limit(limits.max_pixels)
    try:
        im = _open(data, fmt)
        width, height = im.size
        mode = im.mode
        _check_pixels(width, height, limits.max_pixels)
        frames = _check_frames(im, data, limits.max_frames)
        if max_edge and im.format in ("JPEG", "MPO") and max(width, height) > max_edge:
            im.draft("RGB", _draft_size(width, height, max_edge))
        _check_memory(image_memory.plan(im, (width, height), len(data), max_edge), mode, fmt, limits)
        im.load()
    except RejectedImage:
        raise
    except Image.DecompressionBombError as exc:
        raise RejectedImage(f"the image is too large to decode safely: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise RejectedImage(f"the image data is truncated or corrupt: {_describe(exc)}") from None
    return DecodedImage(im, fmt, mode, width, height, frames, _exif(im))


def oriented(image: Image.Image, orientation: int) -> Image.Image:
    """The image turned upright for an EXIF orientation (the same table as ImageOps.exif_transpose)."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def display(decoded: DecodedImage, max_edge: int | None = None) -> Image.Image:
    """The decoded image upright and ready to show (`to_display`), reduced first by the integer factor
    that keeps its longest edge at least image_memory.REDUCE_GAP times `max_edge`. The decoded
    image is closed once a copy replaces it: only `decoded`'s metadata is usable afterwards."""
    source = decoded.image
    image = _reducible(source)
    _release(source, image)
    factor = image_memory.reduce_factor(image.size, max_edge)
    if factor > 1:
        image = _reduce(image, factor)
        _release(source, image)
    image = oriented(image, decoded.orientation)
    _release(source, image)
    shown = to_display(image, in_place=True)
    _release(source, shown)
    return shown


def _reducible(image: Image.Image) -> Image.Image:
    """`image` in a mode `_reduce` averages: palettes become RGB(A), bilevel L, colour keys alpha."""
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if image.mode in ("L", "RGB") and image.info.get("transparency") is not None:
        return image.convert("RGBA")  # a colour key cannot survive averaging: make it alpha first
    if image.mode == "1":
        return image.convert("L")
    return image


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    if image.mode.startswith("I;16"):  # Image.reduce refuses 16-bit greys; a box resize is the same
        size = (math.ceil(image.width / factor), math.ceil(image.height / factor))
        return image.resize(size, Image.Resampling.BOX)
    return image.reduce(factor)


def _release(source: Image.Image, current: Image.Image) -> None:
    if current is not source:
        source.close()


def to_display(image: Image.Image, in_place: bool = False) -> Image.Image:
    """8-bit sRGB "RGB", or "RGBA" when the image has transparency, with no metadata left in `info`.

    16-bit and 32-bit greys are scaled (not clipped) to 8 bits; an embedded ICC profile is applied
    (CMYK and wide-gamut RGB come out right); palettes and LA become RGBA when they have transparency.
    Conversions copy only when the mode changes; with `in_place` the result may be `image` itself,
    its metadata cleared.
    """
    mode = image.mode
    try:
        image = _to_srgb(_to_8bit(image))
        alpha = image.has_transparency_data
        target = "RGBA" if alpha else "RGB"
        if image.mode != target:
            image = image.convert(target)
    except ValueError as exc:
        raise RejectedImage(f"colour mode {mode} is not supported: {_describe(exc)}") from None
    if alpha and _opaque(image):
        image = image.convert("RGB")  # an alpha channel that is opaque everywhere
    elif image.info and not in_place:
        image = image.copy()  # the caller's image keeps its metadata; ours has none
    image.info = {}
    return image


def _opaque(image: Image.Image) -> bool:
    extrema = cast("tuple[tuple[int, int], ...]", image.getextrema())  # per band, without a copy
    return extrema[-1] == (255, 255)


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16"):
        return image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if image.mode == "I":
        high = _high(image)
        scaled = image if high <= 255 else image.point(lambda v: v * (255 / max(high, 65535)))
        return scaled.convert("L")
    if image.mode == "F":
        high = _high(image)
        return (image.point(lambda v: v * 255) if high <= 1.0 else image).convert("L")
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _srgb(), outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # an unusable profile: fall back to Pillow's plain conversion
    return converted if converted is not None else image


def _high(image: Image.Image) -> float:
    return float(cast("tuple[float, float]", image.getextrema())[1])


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _open(data: bytes, fmt: str) -> Image.ImageFile.ImageFile:
    # The plugin's factory, as Image.open calls it, but without Pillow's own bomb check: that one
    # refuses before we learn the size. Ours runs right after, from the header, before any decoding.
    factory, accept = Image.OPEN[fmt]
    accepted = True if accept is None else accept(data[:16])
    if isinstance(accepted, str) or not accepted:
        raise RejectedImage(f"not an image: the content is not {_allowed()}")
    return factory(io.BytesIO(data), "")


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise RejectedImage(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise RejectedImage(
            f"image is {width}x{height} = {_mp(width * height)} megapixels, "
            f"over the {_mp(max_pixels)} megapixel limit"
        )


def _check_memory(plan: image_memory.MemoryPlan, mode: str, fmt: str, limits: Limits) -> None:
    if plan.need <= limits.max_memory:
        return
    fitting = plan.pixels * limits.max_memory // plan.need
    raise RejectedImage(
        f"the image needs about {_mib(plan.need)} MiB of memory to process, over this function's "
        f"{_mib(limits.max_memory)} MiB budget ({_mp(plan.pixels)} megapixels, {_LABELS.get(fmt, fmt)} "
        f"{mode}): scale it down to about {_mp(fitting)} megapixels or less"
    )


def _check_frames(im: Image.Image, data: bytes, max_frames: int) -> int:
    frames = _count_frames(im, data, stop=max_frames + 1)
    if frames > max_frames:
        counted = f"more than {max_frames}" if im.format in ("GIF", "TIFF") else str(frames)
        raise RejectedImage(f"animated image has {counted} frames, over the {max_frames} frame limit")
    return frames


def _count_frames(im: Image.Image, data: bytes, stop: int) -> int:
    """Frames, counted without decoding any; GIF and TIFF stop counting at `stop`."""
    if im.format == "GIF":
        return max(1, gif_frames(data, stop))
    if im.format == "TIFF":
        count = 1
        try:
            while count < stop:
                im.seek(count)  # parses the next IFD only
                count += 1
        except EOFError:
            pass
        im.seek(0)
        return count
    return max(1, int(getattr(im, "n_frames", 1)))


def gif_frames(data: bytes, stop: int) -> int:
    """Count a GIF's image descriptors by walking its blocks (no LZW decoding), up to `stop`."""
    if len(data) < 13:
        return 0
    pos = 13 + _color_table(data[10])
    count = 0
    while pos < len(data) and count < stop:
        block = data[pos]
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):  # image: descriptor, table, LZW size, data
            pos = _skip_sub_blocks(data, pos + 10 + _color_table(data[pos + 9]) + 1)
            count += 1
        else:  # trailer, or something a decoder would refuse anyway
            break
    return count


def _color_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def _draft_size(width: int, height: int, max_edge: int) -> tuple[int, int]:
    scale = max_edge / max(width, height)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _exif(im: Image.Image) -> Image.Exif:
    try:
        return im.getexif()
    except (*_DECODE_ERRORS, KeyError):
        return Image.Exif()  # EXIF is optional metadata: a malformed block does not fail the image


def _align_pillow_limit(max_pixels: int) -> None:
    # Pillow's global backstop (checked again while seeking GIF frames, TIFF tiles, ...) must not
    # refuse what our limit accepts; it stays in force above it.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _allowed() -> str:
    names = [_LABELS.get(f, f) for f in readable_formats()]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _mp(pixels: int) -> str:
    value = pixels / 1_000_000
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.0f}"


def _mb(size: int) -> str:
    value = size / 1024 / 1024
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"
