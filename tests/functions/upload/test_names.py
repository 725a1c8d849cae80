"""POST /upload keeps the client's file name however it is sent: RFC 8187 Content-Disposition,
multipart, or X-Filename as older clients send it (latin-1, or the raw UTF-8 bytes curl sends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.filenames import content_disposition
from shared.objectstore.local import LocalObjectStore
from tests.support import images
from tests.support.platform import DevProcess

NAME = "Été à Paris 写真.jpg"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    platform = DevProcess(tmp_path_factory.mktemp("upload-names") / "data", "--keep-warm").start()
    try:
        yield platform
    finally:
        platform.stop()


def upload(dev: DevProcess, headers: dict[str, str | bytes], body: bytes | None = None) -> dict[str, str]:
    answer = dev.request("POST", "/upload", user="demo", body=body or images.jpeg(), headers=headers)
    assert answer.status == 201, answer.data
    return json.loads(answer.data)  # type: ignore[no-any-return]


def stored_metadata(dev: DevProcess, key: str) -> dict[str, str]:
    found = LocalObjectStore(Path(dev.data_dir) / "buckets").stat("uploads", key)
    assert found is not None
    return dict(found.user_metadata)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Content-Disposition": content_disposition(NAME)}, NAME),
        ({"Content-Disposition": "attachment; filename*=UTF-8''a%20%22b%22%3B.jpg"}, 'a "b";.jpg'),
        ({"Content-Disposition": 'attachment; filename="C:/photos/plain.jpg"'}, "plain.jpg"),
        ({"X-Filename": "été.jpg"}, "été.jpg"),  # latin-1, as http.client sends a str
        ({"X-Filename": "写真 été.jpg".encode()}, "写真 été.jpg"),  # the UTF-8 bytes, as curl sends them
        ({"X-Filename": "100%25.jpg"}, "100%25.jpg"),  # an old client's name is taken as it is
    ],
)
def test_the_name_is_kept_however_it_is_sent(
    dev: DevProcess, headers: dict[str, str | bytes], expected: str
) -> None:
    answer = upload(dev, headers)
    assert answer["filename"] == expected
    metadata = stored_metadata(dev, answer["key"])
    assert all(0x20 <= ord(c) <= 0x7E for c in metadata["filename"])  # what S3 metadata may hold


def test_multipart_with_an_extended_filename(dev: DevProcess) -> None:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"; '
            "filename*=UTF-8''%E5%86%99%E7%9C%9F.jpg\r\nContent-Type: image/jpeg\r\n\r\n"
        ).encode()
        + images.jpeg()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = upload(dev, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body)
    assert answer["filename"] == "写真.jpg"


def test_without_a_name_none_is_kept(dev: DevProcess) -> None:
    answer = upload(dev, {"Content-Type": "image/jpeg"})
    assert answer["filename"] is None
    assert "filename" not in stored_metadata(dev, answer["key"])
