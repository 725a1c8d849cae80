"""What inspect reports: oriented size, EXIF, perceptual hash, dominant colour, modes and frames."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pytest
from PIL import Image

from functions.inspect.analyze import analyze, dominant_color, hamming, phash
from functions.inspect.exif import select_exif
from pipeline.images import RejectedImage
from tests.support import images as build


def test_a_camera_jpeg_reports_upright_size_and_its_exif() -> None:
    data = build.jpeg((320, 240), exif=build.camera_exif(orientation=6))
    result = analyze(data)
    assert (result.width, result.height) == (240, 320)  # orientation 6: turned 90 degrees
    assert (result.format, result.mode, result.frames) == ("JPEG", "RGB", 1)
    assert result.bytes == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.exif == {
        "make": "Canon",
        "model": "Canon EOS R5",
        "lens_model": "RF50mm F1.8 STM",
        "date_taken": "2024-05-01T10:20:30+10:00",
        "exposure_time": 0.004,
        "f_number": 2.8,
        "iso": 400,
        "focal_length": 50.0,
        "gps_latitude": pytest.approx(-33.8599, abs=1e-6),  # 33 51' 35.64" S
        "gps_longitude": pytest.approx(151.2011111, abs=1e-6),  # 151 12' 4" E
        "orientation": 6,
    }
    json.dumps(asdict(result))  # JSON-safe throughout


@pytest.mark.parametrize(("orientation", "size"), [(1, (320, 240)), (3, (320, 240)), (5, (240, 320))])
def test_only_orientations_5_to_8_swap_width_and_height(orientation: int, size: tuple[int, int]) -> None:
    result = analyze(build.jpeg((320, 240), exif=build.camera_exif(orientation)))
    assert (result.width, result.height) == size


def test_invalid_exif_values_are_left_out() -> None:
    exif = Image.Exif()
    exif[0x0112] = 9
    exif[0x8769] = {0x9003: "0000:00:00 00:00:00", 0x829D: build.R(28, 0), 0x8827: 0}
    exif[0x8825] = {
        1: "N",
        2: (build.R(95, 1), build.R(0, 1), build.R(0, 1)),
        3: "E",
        4: (build.R(200, 1), 0, 0),
    }
    assert analyze(build.jpeg((40, 30), exif=exif)).exif == {}


def test_date_taken_falls_back_to_datetime_and_gps_north_east_is_positive() -> None:
    exif = Image.Exif()
    exif[0x0132] = "2023:12:31 23:59:58"
    exif[0x8825] = {1: "N", 2: (build.R(48, 1), build.R(30, 1), build.R(0, 1)), 3: "W", 4: (2.0, 15.0, 0.0)}
    assert analyze(build.jpeg((40, 30), exif=exif)).exif == {
        "date_taken": "2023-12-31T23:59:58",
        "gps_latitude": 48.5,
        "gps_longitude": -2.25,
    }


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_malformed_exif_block_does_not_fail_the_image() -> None:
    exif = Image.Exif()
    exif.load(b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x02\x00\x0f\x01\x02\x00\x06\x00\x00\x00")
    assert select_exif(exif) == {}
    data = build.jpeg((40, 30), exif=None)
    broken = data[:2] + b"\xff\xe1\x00\x10Exif\x00\x00MM\x00*\xff\xff\xff\xff" + data[2:]
    assert analyze(broken).exif == {}


def test_phash_is_16_hex_digits_equal_for_the_same_picture_and_near_for_a_resized_copy() -> None:
    picture = build.scene((640, 480))
    original = phash(picture)
    assert len(original) == 16 and int(original, 16) >= 0
    assert phash(picture.copy()) == original
    resized = analyze(build.jpeg(image=picture.resize((200, 150), Image.Resampling.BICUBIC))).phash
    assert hamming(original, resized) <= 6
    assert hamming(analyze(build.jpeg(image=picture)).phash, original) <= 4  # JPEG round trip


def test_phash_is_far_for_a_different_picture() -> None:
    assert hamming(phash(build.scene((640, 480), seed=0)), phash(build.scene((640, 480), seed=1))) >= 20


def test_phash_sees_the_picture_upright() -> None:
    picture = build.scene((320, 240))
    turned = picture.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says turn it back
    tagged = analyze(build.jpeg(image=turned, exif=build.camera_exif(orientation=6))).phash
    assert hamming(tagged, phash(picture)) <= 4


def test_phash_of_a_flat_image_has_only_the_dc_bit() -> None:
    assert phash(build.solid((50, 50), (90, 90, 90))) == "8000000000000000"


def test_dominant_color_is_the_most_common_opaque_colour() -> None:
    image = build.solid((100, 100), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 30, 30))
    assert dominant_color(image) == "#ff0000"
    rgba = build.solid((100, 100), (0, 0, 255, 0), "RGBA")  # mostly transparent blue
    rgba.paste((0, 200, 0, 255), (0, 0, 30, 30))
    assert dominant_color(rgba) == "#00c800"
    assert dominant_color(build.solid((10, 10), (0, 0, 0, 0), "RGBA")) is None


@pytest.mark.parametrize(
    ("data", "mode", "color"),
    [
        (build.cmyk_jpeg(), "CMYK", "#ff0000"),
        (build.png16(), "I;16", None),
        (build.palette_png(), "P", "#0000ff"),
        (build.la_png(), "LA", "#808080"),
        (build.rgba_png(), "RGBA", "#00c800"),
    ],
    ids=["cmyk", "16-bit", "palette", "la", "rgba"],
)
def test_every_colour_mode_is_analysed(data: bytes, mode: str, color: str | None) -> None:
    result = analyze(data)
    assert (result.mode, result.width, result.height) == (mode, 64, 48)
    if color is not None:
        assert result.dominant_color == color


def test_an_animated_gif_reports_its_frames() -> None:
    assert analyze(build.animated_gif(3)).frames == 3


def test_analyze_refuses_what_decode_refuses() -> None:
    with pytest.raises(RejectedImage, match="not an image"):
        analyze(build.text_file())
