"""Variants: one decode, upright, right sizes, never enlarged, correct colours, no metadata."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from functions.thumbnail import render as render_module
from functions.thumbnail.render import Rendered, VariantSpec, parse_variants, render
from pipeline.images import RejectedImage
from tests.support import images as build

DEFAULT = parse_variants("thumb:256:webp,preview:1024:webp")


def _open(variant: Rendered) -> Image.Image:
    image = Image.open(io.BytesIO(variant.data))
    image.load()
    return image


def test_parse_variants_reads_the_setting() -> None:
    assert parse_variants("thumb:256:webp,preview:1024:webp") == (
        VariantSpec("thumb", 256, "WEBP", "webp", "image/webp"),
        VariantSpec("preview", 1024, "WEBP", "webp", "image/webp"),
    )
    assert [s.format for s in parse_variants(" a:10:jpeg , b:20:PNG,c:5:jpg ")] == ["JPEG", "PNG", "JPEG"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no variants configured"),
        ("thumb:256", "must be name:edge:format"),
        ("thumb:0:webp", "edge '0' must be a whole number"),
        ("thumb:big:webp", "edge 'big' must be a whole number"),
        ("thumb:256:gif", "format 'gif' must be one of"),
        ("a:1:png,a:2:png", "must be unique"),
        ("../x:1:png", "must be unique, lower-case"),
    ],
)
def test_parse_variants_says_which_entry_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_variants(text)


def test_a_large_oriented_jpeg_gives_upright_variants_of_the_right_sizes_without_exif() -> None:
    data = build.jpeg((3000, 2000), exif=build.camera_exif(orientation=6))
    thumb, preview = render(data, DEFAULT)
    assert (thumb.spec.name, thumb.width, thumb.height) == ("thumb", 171, 256)  # portrait now
    assert (preview.spec.name, preview.width, preview.height) == ("preview", 683, 1024)
    for variant in (thumb, preview):
        image = _open(variant)
        assert image.format == "WEBP" and image.size == (variant.width, variant.height)
        assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info


def test_a_small_image_is_never_enlarged() -> None:
    thumb, preview = render(build.jpeg((100, 50)), DEFAULT)
    assert (thumb.width, thumb.height) == (preview.width, preview.height) == (100, 50)
    assert _open(thumb).size == (100, 50)


def test_the_image_is_decoded_once_in_draft_mode_at_the_largest_size(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real_decode = render_module.decode

    def spy(*args: object, **kwargs: object) -> object:
        decoded = real_decode(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(decoded.image.size)
        return decoded

    monkeypatch.setattr(render_module, "decode", spy)
    render(build.jpeg((4096, 3072)), DEFAULT)
    render(build.jpeg((4000, 3000)), DEFAULT)
    assert calls == [(1024, 768), (2000, 1500)]  # one decode each, at the smallest scale still >= 1024


def test_cmyk_becomes_rgb_with_the_right_colour() -> None:
    (variant,) = render(build.cmyk_jpeg(), parse_variants("t:32:png"))
    image = _open(variant)
    assert image.mode == "RGB" and _near(image.getpixel((10, 10)), (255, 0, 0))


def test_16_bit_grey_is_scaled_to_8_bits() -> None:
    (variant,) = render(build.png16(), parse_variants("t:64:png"))
    image = _open(variant)
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((63, 0)) == (128, 128, 128)


@pytest.mark.parametrize(
    "data", [build.palette_png(), build.la_png(), build.rgba_png()], ids=["p", "la", "rgba"]
)
def test_transparency_is_kept_in_webp(data: bytes) -> None:
    (variant,) = render(data, parse_variants("t:64:webp"))
    image = _open(variant)
    assert image.mode == "RGBA"
    assert image.getchannel("A").getpixel((0, 0)) == 0 and image.getchannel("A").getpixel((63, 47)) == 255


def test_jpeg_variants_flatten_transparency_on_white() -> None:
    (variant,) = render(build.palette_png(), parse_variants("t:64:jpeg"))
    image = _open(variant)
    assert image.format == "JPEG" and image.mode == "RGB"
    assert _near(image.getpixel((2, 2)), (255, 255, 255)) and _near(image.getpixel((60, 40)), (0, 0, 255))


def test_an_animated_gif_gives_a_still_of_its_first_frame() -> None:
    (variant,) = render(build.animated_gif(3), parse_variants("t:16:png"))
    image = _open(variant)
    assert (image.size, getattr(image, "n_frames", 1)) == ((16, 16), 1)


def test_rendering_is_deterministic() -> None:
    data = build.jpeg((800, 600))
    assert [v.data for v in render(data, DEFAULT)] == [v.data for v in render(data, DEFAULT)]


def test_render_refuses_what_decode_refuses() -> None:
    with pytest.raises(RejectedImage, match="truncated or corrupt"):
        render(build.truncated_jpeg(), DEFAULT)


def _near(actual: object, expected: tuple[int, ...], tolerance: int = 8) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))
