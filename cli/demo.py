"""`datafrost dev --demo`: a few generated images uploaded right after start, so the catalog fills.

The pictures are the same on every start (drawn, not random), and the ones the demo user has already
(the catalog knows their sha256) are skipped: starting again adds nothing.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from cli.common import CliError
from cli.upload import Uploader, UploadFailed

DEMO_IMAGES = 5


def _picture(n: int) -> tuple[str, bytes, str]:
    """A small, distinct picture: a gradient with shapes; every other one a JPEG with camera EXIF."""
    width, height = (640 + 80 * n, 420 + 40 * n)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        shade = int(255 * y / height)
        draw.line([(0, y), (width, y)], fill=((40 * n) % 256, shade, 255 - shade))
    draw.ellipse([width // 4, height // 4, width // 2 + 40 * n, height // 2 + 30 * n], fill=(250, 200, 40))
    draw.rectangle([width // 2, height // 3, width - 30, height - 30], outline=(255, 255, 255), width=8)
    out = io.BytesIO()
    if n % 2 == 0:
        exif = Image.Exif()
        exif[0x010F] = "DataFrost"  # Make
        exif[0x0110] = f"Demo Camera {n}"  # Model
        exif[0x0112] = 6 if n == 0 else 1  # Orientation: the first one is stored sideways
        image.save(out, "JPEG", quality=88, exif=exif)
        return f"demo-{n}.jpg", out.getvalue(), "image/jpeg"
    image.save(out, "PNG")
    return f"demo-{n}.png", out.getvalue(), "image/png"


def run_demo(url: str, token: str | None, token_command: str = "datafrost token") -> None:
    """Upload the pictures the demo user lacks, as the demo user (`token` is None when auth is off)."""
    uploader = Uploader(url, {"Authorization": f"Bearer {token}"} if token else {})
    uploaded = skipped = 0
    for n in range(DEMO_IMAGES):
        name, data, _ = _picture(n)
        try:
            there = uploader.uploaded_already(data)
        except UploadFailed as exc:
            raise CliError(f"demo: cannot ask the catalog about {name}: {exc}") from None
        if there is not None:
            skipped += 1
            continue
        status, body = uploader.upload(name, data)
        if status != 201:
            raise CliError(f"demo upload of {name} failed with {status}: {body.get('error')}")
        uploaded += 1
    kept = f" (skipped {skipped} already uploaded)" if skipped else ""
    print(f"demo: uploaded {uploaded} images as the demo user{kept}; the catalog fills in a moment:")
    print(f'  curl -H "Authorization: Bearer $({token_command})" {url}/catalog/images')
