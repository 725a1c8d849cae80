"""The EXIF fields inspect reports, as JSON-safe values (str, int, float); invalid ones left out.

Keys: make, model, lens_make, lens_model, date_taken (ISO 8601, with the offset when the camera
recorded one), exposure_time (seconds), f_number, iso, focal_length (mm), gps_latitude and
gps_longitude (decimal degrees, negative south and west), orientation (1-8).
"""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime
from typing import Any

from PIL import Image

log = logging.getLogger("datafrost.inspect")

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, ORIENTATION, DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
EXPOSURE_TIME, F_NUMBER, ISO = 0x829A, 0x829D, 0x8827
DATE_ORIGINAL, DATE_DIGITIZED = 0x9003, 0x9004
OFFSET, OFFSET_ORIGINAL, OFFSET_DIGITIZED = 0x9010, 0x9011, 0x9012
FOCAL_LENGTH, LENS_MAKE, LENS_MODEL = 0x920A, 0xA433, 0xA434
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
MAX_TEXT = 128
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}|Z")


def select_exif(exif: Image.Exif) -> dict[str, Any]:
    """The selected fields of an image's EXIF; {} when there is none or it cannot be read."""
    main, sub, gps = _ifd(exif, None), _ifd(exif, EXIF_IFD), _ifd(exif, GPS_IFD)
    fields: dict[str, Any] = {
        "make": _text(main.get(MAKE)),
        "model": _text(main.get(MODEL)),
        "lens_make": _text(sub.get(LENS_MAKE)),
        "lens_model": _text(sub.get(LENS_MODEL)),
        "date_taken": _date_taken(main, sub),
        "exposure_time": _positive(sub.get(EXPOSURE_TIME)),
        "f_number": _positive(sub.get(F_NUMBER)),
        "iso": _int(sub.get(ISO)),
        "focal_length": _positive(sub.get(FOCAL_LENGTH)),
        "gps_latitude": _coordinate(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), 90, "S"),
        "gps_longitude": _coordinate(gps.get(GPS_LON), gps.get(GPS_LON_REF), 180, "W"),
        "orientation": _orientation(main.get(ORIENTATION)),
    }
    return {name: value for name, value in fields.items() if value is not None}


def _ifd(exif: Image.Exif, tag: int | None) -> dict[int, Any]:
    try:
        return dict(exif) if tag is None else dict(exif.get_ifd(tag))
    except Exception as exc:  # optional metadata: a malformed block must not fail the image
        log.info("EXIF block %s not readable: %s", hex(tag or 0), exc)
        return {}


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, tuple | list) and value else value


def _number(value: Any) -> float | None:
    value = _first(value)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # ints, floats and IFDRational
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _positive(value: Any) -> float | None:
    number = _number(value)
    return round(number, 6) if number is not None and number > 0 else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def _orientation(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number in range(1, 9) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()
    return text[:MAX_TEXT] or None


def _date_taken(main: dict[int, Any], sub: dict[int, Any]) -> str | None:
    candidates = (
        (sub.get(DATE_ORIGINAL), sub.get(OFFSET_ORIGINAL)),
        (sub.get(DATE_DIGITIZED), sub.get(OFFSET_DIGITIZED)),
        (main.get(DATETIME), sub.get(OFFSET)),
    )
    for raw, raw_offset in candidates:
        text = _text(raw)
        if not text:
            continue
        try:
            taken = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue  # "0000:00:00 00:00:00" and other placeholders
        offset = _text(raw_offset)
        return taken.isoformat() + (offset if offset and _OFFSET.fullmatch(offset) else "")
    return None


def _coordinate(value: Any, ref: Any, limit: int, negative: str) -> float | None:
    """Degrees, minutes, seconds (or a single number) and a hemisphere as signed decimal degrees."""
    parts = value if isinstance(value, tuple | list) else (value,)
    numbers = [_number(part) for part in parts[:3]]
    if not numbers or any(n is None or n < 0 for n in numbers):
        return None
    degrees = sum(n / 60**i for i, n in enumerate(numbers) if n is not None)
    if degrees > limit:
        return None
    hemisphere = (_text(ref) or "").upper()[:1]
    return round(-degrees if hemisphere == negative else degrees, 7)
