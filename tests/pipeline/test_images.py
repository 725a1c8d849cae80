"""Safe decoding: sniffing, the allowlist, pixel and frame limits checked before decoding, corrupt data."""

from __future__ import annotations

import io
import time
import tracemalloc

import pytest
from PIL import Image, ImageFile, ImageOps

from pipeline.images import (
    Limits,
    RejectedImage,
    decode,
    gif_frames,
    oriented,
    readable_formats,
    sniff_format,
    to_display,
)
from tests.support import images as build


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {}), ("PNG", {}), ("WEBP", {}), ("GIF", {}), ("TIFF", {}), ("BMP", {})],
)
def test_each_allowed_format_is_sniffed_and_decoded(fmt: str, params: dict[str, object]) -> None:
    data = build.encode(build.scene((120, 80)), fmt, **params)
    assert sniff_format(data) == fmt
    decoded = decode(data)
    assert (decoded.format, decoded.width, decoded.height, decoded.frames) == (fmt, 120, 80, 1)
    assert decoded.image.size == (120, 80)


def test_avif_is_accepted_only_when_this_pillow_reads_it() -> None:
    if "AVIF" not in readable_formats():
        pytest.skip("this Pillow has no AVIF support")
    decoded = decode(build.encode(build.scene((64, 48)), "AVIF"))
    assert (decoded.format, decoded.width, decoded.height) == ("AVIF", 64, 48)


def test_heif_without_a_plugin_is_refused_with_what_to_do() -> None:
    if "HEIF" in readable_formats():
        pytest.skip("a HEIF plugin is installed")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(RejectedImage, match="HEIF images cannot be read here: convert it to JPEG or PNG"):
        decode(heic)


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(RejectedImage, match=r"^the file is empty$"):
        decode(b"")


@pytest.mark.parametrize(
    "data",
    [
        build.text_file(),
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        b"%PDF-1.7\n" + b"0" * 100,
        build.encode(build.scene((16, 16)), "PPM"),  # Pillow reads it, the allowlist does not
        build.encode(build.scene((16, 16)), "ICO"),
    ],
    ids=["text", "svg", "pdf", "ppm", "ico"],
)
def test_content_that_is_not_an_allowed_image_is_refused(data: bytes) -> None:
    assert sniff_format(data) is None
    with pytest.raises(RejectedImage, match=r"^not an image: the content is not JPEG, PNG, WebP, GIF, TIFF"):
        decode(data)


def test_over_the_upload_limit_is_refused_before_decoding() -> None:
    with pytest.raises(RejectedImage, match=r"the file is .* MB, over the 0.00095 MB limit"):
        decode(build.jpeg(), Limits(max_bytes=1000))


@pytest.mark.parametrize("max_edge", [None, 64])
def test_a_truncated_jpeg_is_refused_even_in_draft_mode(max_edge: int | None) -> None:
    with pytest.raises(
        RejectedImage, match=r"^the image data is truncated or corrupt: image file is truncated"
    ):
        decode(build.truncated_jpeg(), max_edge=max_edge)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_data_is_refused() -> None:
    data = bytearray(build.encode(build.scene((64, 64)), "PNG"))
    data[60:80] = b"\x00" * 20  # inside IHDR/IDAT: a CRC or zlib error
    with pytest.raises(RejectedImage, match=r"^the image data is truncated or corrupt: "):
        decode(bytes(data))


def test_a_png_header_claiming_50000_by_50000_is_refused_from_the_header() -> None:
    data = build.png_header_bomb()
    assert len(data) < 200
    with pytest.raises(Image.DecompressionBombError, match="2500000000 pixels"):
        Image.open(io.BytesIO(data))  # well formed (CRCs pass): Pillow reads the header and balks
    tracemalloc.start()
    with pytest.raises(RejectedImage) as refused:
        decode(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert str(refused.value) == "image is 50000x50000 = 2500 megapixels, over the 80 megapixel limit"
    assert peak < 2_000_000


def test_the_pixel_limit_comes_from_the_limits() -> None:
    data = build.encode(build.scene((100, 100)), "PNG")
    assert decode(data, Limits(max_pixels=10_000)).width == 100
    with pytest.raises(RejectedImage, match=r"image is 101x100 = 0.01 megapixels, over the 0.01 megapixel"):
        decode(build.encode(build.scene((101, 100)), "PNG"), Limits(max_pixels=10_000))


def test_a_gif_with_thousands_of_frames_is_refused_without_decoding_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = build.gif_frame_bomb(5000)
    assert len(data) < 150_000
    with Image.open(io.BytesIO(data)) as gif:
        assert getattr(gif, "n_frames", 1) == 5000  # a real GIF, as Pillow sees it
    loads: list[object] = []
    real_load = ImageFile.ImageFile.load

    def counting_load(self: ImageFile.ImageFile) -> object:
        loads.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(RejectedImage) as refused:
        decode(data)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert str(refused.value) == "animated image has more than 1000 frames, over the 1000 frame limit"
    assert loads == []  # not one frame decoded
    assert peak < 5_000_000 and elapsed < 1.0


def test_gif_frames_are_counted_from_the_blocks_and_the_count_stops_at_the_limit() -> None:
    assert gif_frames(build.gif_frame_bomb(40), stop=1000) == 40
    assert gif_frames(build.gif_frame_bomb(5000), stop=11) == 11
    assert gif_frames(build.animated_gif(3), stop=1000) == 3


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "TIFF"])
def test_frames_of_animated_and_multi_page_images_are_counted(fmt: str) -> None:
    frames = [build.solid((16, 16), (i * 60, 0, 0)) for i in range(4)]
    data = build.encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40)
    assert decode(data).frames == 4
    with pytest.raises(RejectedImage, match="frames, over the 3 frame limit"):
        decode(data, Limits(max_frames=3))


def test_draft_mode_decodes_a_large_jpeg_smaller_but_reports_the_stored_image() -> None:
    data = build.jpeg((2000, 1000))
    decoded = decode(data, max_edge=256)
    assert (decoded.width, decoded.height, decoded.mode) == (2000, 1000, "RGB")
    assert decoded.image.size == (500, 250)  # scale 1/4: the smallest still >= 256 on the long edge
    assert decode(data).image.size == (2000, 1000)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillows_exif_transpose(orientation: int) -> None:
    data = build.jpeg((60, 40), exif=build.camera_exif(orientation))
    decoded = decode(data)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    turned = oriented(decoded.image, decoded.orientation)
    assert decoded.orientation == orientation
    assert turned.size == expected.size == decoded.oriented_size
    assert turned.tobytes() == expected.tobytes()


def test_to_display_makes_8_bit_srgb_rgb_or_rgba() -> None:
    cmyk = to_display(decode(build.cmyk_jpeg()).image)
    assert cmyk.mode == "RGB" and _near(cmyk.getpixel((5, 5)), (255, 0, 0))
    grey = to_display(decode(build.png16()).image)
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (255, 255, 255)
    assert grey.getpixel((63, 0)) == (128, 128, 128)  # 32896 / 257: scaled, not clipped
    palette = to_display(decode(build.palette_png()).image)
    assert palette.mode == "RGBA" and palette.getchannel("A").getpixel((0, 0)) == 0
    assert palette.getpixel((63, 0)) == (0, 0, 255, 255)
    la = to_display(decode(build.la_png()).image)
    assert (
        la.mode == "RGBA"
        and la.getchannel("A").getpixel((0, 0)) == 0
        and la.getpixel((63, 0)) == (128, 128, 128, 255)
    )
    assert to_display(decode(build.rgba_png()).image).mode == "RGBA"
    opaque = build.encode(build.solid((8, 8), (1, 2, 3, 255), "RGBA"), "PNG")
    assert to_display(decode(opaque).image).mode == "RGB"  # alpha opaque everywhere is dropped


def test_to_display_applies_an_embedded_icc_profile_and_drops_metadata() -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = build.encode(build.solid((8, 8), (10, 120, 240)), "PNG", icc_profile=srgb)
    image = decode(data).image
    assert "icc_profile" in image.info
    shown = to_display(image)
    assert _near(shown.getpixel((0, 0)), (10, 120, 240)) and shown.info == {}


def _near(actual: object, expected: tuple[int, ...], tolerance: int = 6) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))
