"""Variants of an image from a single decode: upright, 8-bit sRGB, resized largest first, no metadata.

A JPEG is decoded once, in draft mode down to the largest variant's size; every variant then derives
from the previous one (largest first) with Lanczos, and none is larger than the image. Encoders get
no EXIF and no ICC profile (colours are converted to sRGB first). Animated images give a still of
their first frame. Encoding is deterministic, so rendering the same bytes again gives the same bytes.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image

from pipeline.images import Limits, decode, display

# settings name -> (Pillow format, file extension, content type)
FORMATS = {
    "webp": ("WEBP", "webp", "image/webp"),
    "jpeg": ("JPEG", "jpg", "image/jpeg"),
    "jpg": ("JPEG", "jpg", "image/jpeg"),
    "png": ("PNG", "png", "image/png"),
}
MAX_EDGE = 8192
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class VariantSpec:
    name: str
    edge: int  # the longest edge, in pixels
    format: str  # Pillow's name: WEBP, JPEG or PNG
    extension: str
    content_type: str


@dataclass(frozen=True)
class Rendered:
    spec: VariantSpec
    width: int
    height: int
    data: bytes


def parse_variants(text: str) -> tuple[VariantSpec, ...]:
    """Parse "name:edge:format,..." (DATAFROST_VARIANTS); ValueError says which entry is wrong."""
    specs: list[VariantSpec] = []
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        parts = entry.split(":")
        if len(parts) != 3:
            raise ValueError(f"variant {entry!r} must be name:edge:format, e.g. thumb:256:webp")
        name, edge, fmt = (p.strip() for p in parts)
        if not _NAME.fullmatch(name) or name in {s.name for s in specs}:
            raise ValueError(f"variant name {name!r} must be unique, lower-case letters, digits, - and _")
        if not edge.isdigit() or not 1 <= int(edge) <= MAX_EDGE:
            raise ValueError(f"variant {name!r}: edge {edge!r} must be a whole number from 1 to {MAX_EDGE}")
        if fmt.lower() not in FORMATS:
            raise ValueError(f"variant {name!r}: format {fmt!r} must be one of {', '.join(FORMATS)}")
        specs.append(VariantSpec(name, int(edge), *FORMATS[fmt.lower()]))
    if not specs:
        raise ValueError("no variants configured: set DATAFROST_VARIANTS, e.g. thumb:256:webp")
    return tuple(specs)


def render(data: bytes, specs: tuple[VariantSpec, ...], limits: Limits | None = None) -> list[Rendered]:
    """Every variant, in the order of `specs`; raises pipeline.images.RejectedImage."""
    max_edge = max(s.edge for s in specs)
    image = display(decode(data, limits, max_edge=max_edge), max_edge)
    done: dict[str, Rendered] = {}
    for spec in sorted(specs, key=lambda s: s.edge, reverse=True):
        image = fit(image, spec.edge)
        done[spec.name] = Rendered(spec, image.width, image.height, encode(image, spec.format))
    return [done[s.name] for s in specs]


def fit(image: Image.Image, edge: int) -> Image.Image:
    """The image with its longest edge at most `edge`, aspect kept; never enlarged."""
    width, height = image.size
    if max(width, height) <= edge:
        return image
    scale = edge / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(image: Image.Image, fmt: str) -> bytes:
    """Encode without metadata: the image comes from to_display, whose `info` is empty."""
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode == "RGBA":  # JPEG has no alpha: flatten on white
            background = Image.new("RGB", image.size, "white")
            background.paste(image, mask=image.getchannel("A"))
            image = background
        image.save(out, "JPEG", quality=85, optimize=True)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=80, method=4)
    else:
        image.save(out, "PNG")
    return out.getvalue()
