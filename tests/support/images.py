"""Real image files for tests, made with Pillow (the two bombs are crafted by hand, byte by byte)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image, ImageDraw, TiffImagePlugin

R = TiffImagePlugin.IFDRational


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def scene(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """A picture with structure (shapes on a gradient), so hashes and resizes have something to see."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    if seed == 0:
        draw.ellipse((width * 0.1, height * 0.2, width * 0.5, height * 0.8), fill=(200, 30, 30))
        draw.rectangle((width * 0.6, height * 0.1, width * 0.9, height * 0.5), fill=(30, 30, 200))
    else:
        draw.rectangle((0, height * 0.55, width, height), fill=(20, 160, 40))
        draw.polygon([(width * 0.5, 0), (width, height * 0.5), (width * 0.2, height * 0.4)], fill="white")
    return image


def solid(size: tuple[int, int], color: Any, mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def camera_exif(orientation: int = 6) -> Image.Exif:
    """EXIF as a phone camera writes it: make, model, lens, exposure, date with offset, GPS (Sydney)."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif[0x0112] = orientation
    exif[0x8769] = {
        0x9003: "2024:05:01 10:20:30",
        0x9011: "+10:00",
        0x829A: R(1, 250),
        0x829D: R(28, 10),
        0x8827: 400,
        0x920A: R(50, 1),
        0xA434: "RF50mm F1.8 STM",
    }
    exif[0x8825] = {
        1: "S",
        2: (R(33, 1), R(51, 1), R(3564, 100)),
        3: "E",
        4: (R(151, 1), R(12, 1), R(4, 1)),
    }
    return exif


def jpeg(
    size: tuple[int, int] = (320, 240), exif: Image.Exif | None = None, image: Image.Image | None = None
) -> bytes:
    params: dict[str, Any] = {"quality": 90}
    if exif is not None:
        params["exif"] = exif.tobytes()
    return encode(image or scene(size), "JPEG", **params)


def cmyk_jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(solid(size, (0, 255, 255, 0), "CMYK"), "JPEG", quality=95)  # red


def png16(size: tuple[int, int] = (64, 48)) -> bytes:
    """A 16-bit grey PNG: left half 65535 (white), right half 32896 (mid grey)."""
    image = Image.new("I;16", size, 32896)
    image.paste(65535, (0, 0, size[0] // 2, size[1]))
    return encode(image, "PNG")


def palette_png(size: tuple[int, int] = (64, 48)) -> bytes:
    """A palette PNG: index 0 transparent (left half), index 1 opaque blue."""
    image = Image.new("P", size, 1)
    image.putpalette([255, 255, 255, 0, 0, 255])
    image.paste(0, (0, 0, size[0] // 2, size[1]))
    return encode(image, "PNG", transparency=0)


def la_png(size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("LA", size, (128, 255))
    image.paste((0, 0), (0, 0, size[0] // 2, size[1]))
    return encode(image, "PNG")


def rgba_png(size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGBA", size, (0, 200, 0, 255))
    image.paste((0, 0, 255, 0), (0, 0, size[0] // 4, size[1]))  # a transparent blue strip
    return encode(image, "PNG")


def animated_gif(frames: int = 3, size: tuple[int, int] = (32, 32)) -> bytes:
    images = [solid(size, (i * 80 % 256, 0, 0)) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)


def text_file() -> bytes:
    return b"Dear diary, today I saved this note as holiday.jpg by mistake.\n" * 20


def truncated_jpeg() -> bytes:
    data = jpeg((640, 480))
    return data[: len(data) * 2 // 3]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny, valid-looking PNG whose IHDR claims width x height 8-bit RGB pixels (CRCs correct)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def gif_frame_bomb(frames: int = 5000) -> bytes:
    """A looping GIF of `frames` 1x1 frames (about 23 bytes each) with a 2-colour global palette."""
    header = b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    loop = b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    control = b"!\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms
    image = b",\x00\x00\x00\x00\x01\x00\x01\x00\x00" + b"\x02\x02\x44\x01\x00"  # one pixel, LZW
    return header + loop + (control + image) * frames + b";"
