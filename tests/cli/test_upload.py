"""`datafrost upload` against a real `datafrost dev`: any file name uploads under its own name, one
failure stays one line, duplicates are skipped on request; `datafrost dev --demo` uploads its images once."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.filenames import content_disposition, from_content_disposition
from tests.support import images
from tests.support.platform import DevProcess

NOT_UTF8 = os.fsdecode(b"caf\xe9 cr\xe8me.jpg")  # a name the filesystem allows that is not UTF-8
NAMES = {  # the file's name -> the name the catalog keeps
    "Été à Paris 写真.jpg": "Été à Paris 写真.jpg",
    "my holiday photo.png": "my holiday photo.png",
    'say "cheese" it\'s 100%.jpg': 'say "cheese" it\'s 100%.jpg',
    NOT_UTF8: "caf\ufffd cr\ufffdme.jpg",
}


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevProcess]:
    platform = DevProcess(tmp_path / "data", "--keep-warm").start()
    try:
        yield platform
    finally:
        platform.stop()


def image_for(n: int, name: str) -> bytes:
    picture = images.scene((160 + 16 * n, 120), seed=n % 2)
    return images.encode(picture, "PNG" if name.endswith(".png") else "JPEG")


def record(dev: DevProcess, the_id: str, ready: bool = False, timeout: float = 60.0) -> dict[str, Any]:
    """The catalog's record of an image once it exists (and is ready, when asked)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = dev.json("GET", f"/catalog/images/{the_id}", user="demo")
        if status == 200 and (not ready or body["status"] != "processing"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"no {'final ' if ready else ''}record of {the_id}")


def uploaded_ids(stdout: str) -> dict[str, str]:
    """Path -> id, from the lines of uploaded files (`<id>  <path>`)."""
    pairs = (line.split("  ", 1) for line in stdout.splitlines() if len(line) > 34 and line[32:34] == "  ")
    return {path: the_id for the_id, path in pairs}


def test_a_folder_of_any_names_uploads_each_file_under_its_name_and_a_bad_one_fails_alone(
    dev: DevProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for n, name in enumerate(NAMES):
        (folder / name).write_bytes(image_for(n, name))
    (folder / "notes about it.jpg").write_bytes(b"these are words, not pixels\n")

    run = dev.cli("upload", str(folder))

    assert run.returncode == 1, run.stderr  # one file failed
    assert "Traceback" not in run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == len(NAMES) + 1, run.stdout
    failed = [line for line in lines if line.startswith("FAILED")]
    assert len(failed) == 1 and "notes about it.jpg" in failed[0] and "415" in failed[0], failed
    ids = uploaded_ids(run.stdout)
    shown = {name: str(folder / kept) for name, kept in NAMES.items()}  # bytes that are not UTF-8: U+FFFD
    assert set(ids) == set(shown.values()), run.stdout  # every other file, its name in the output
    assert f"uploaded {len(NAMES)} of {len(NAMES) + 1} files" in run.stderr
    assert run.stderr.rstrip().endswith("1 failed")
    for name, kept in NAMES.items():
        found = record(dev, ids[shown[name]])
        assert found["filename"] == kept
    status, listing = dev.json("GET", "/catalog/images?filename=paris", user="demo")
    assert status == 200 and [r["filename"] for r in listing["images"]] == ["Été à Paris 写真.jpg"]


def test_skip_duplicates_skips_what_the_owner_has_and_duplicate_of_links_the_copies(
    dev: DevProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "first"
    folder.mkdir()
    data = image_for(0, "a.jpg")
    (folder / "a.jpg").write_bytes(data)
    first = dev.cli("upload", str(folder))
    assert first.returncode == 0, first.stderr
    first_id = uploaded_ids(first.stdout)[str(folder / "a.jpg")]
    assert record(dev, first_id, ready=True)["status"] == "ready"

    again = tmp_path / "again"
    again.mkdir()
    (again / "a copy.jpg").write_bytes(data)
    (again / "new.png").write_bytes(image_for(1, "new.png"))
    skipping = dev.cli("upload", "--skip-duplicates", str(again))
    assert skipping.returncode == 0, skipping.stderr
    assert f"SKIPPED  {again / 'a copy.jpg'}: already uploaded as {first_id} (a.jpg)" in skipping.stdout
    assert list(uploaded_ids(skipping.stdout)) == [str(again / "new.png")]
    assert "uploaded 1 of 2 files" in skipping.stderr and "1 skipped" in skipping.stderr

    plain = dev.cli("upload", str(again / "a copy.jpg"))  # without the flag: a second record...
    assert plain.returncode == 0, plain.stderr
    copy = record(dev, uploaded_ids(plain.stdout)[str(again / "a copy.jpg")], ready=True)
    assert copy["duplicate_of"] == first_id and copy["filename"] == "a copy.jpg"  # ...linked to the first
    assert record(dev, first_id)["duplicate_of"] is None


def test_an_unreachable_platform_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(image_for(0, "a.jpg"))
    platform = DevProcess(tmp_path / "data")  # never started: nothing listens on its port
    run = platform.cli("upload", str(tmp_path / "a.jpg"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "cannot reach" in run.stderr


def test_demo_uploads_its_images_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seen: list[set[str]] = []
    for _ in range(2):
        platform = DevProcess(data_dir, "--demo", "--keep-warm").start()
        try:
            ids = wait_for_demo(platform)
            seen.append(ids)
        finally:
            out = platform.stop()
        assert "demo:" in out
    assert seen[0] == seen[1] and len(seen[0]) == 5
    assert "skipped 5 already uploaded" in out


def wait_for_demo(platform: DevProcess, timeout: float = 90.0) -> set[str]:
    """The demo user's image ids once the five demo images are all analyzed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = platform.json("GET", "/catalog/images?filename=demo-", user="demo")
        records = body["images"] if status == 200 else []
        if len(records) >= 5 and all(r["sha256"] for r in records):
            return {r["id"] for r in records}
        time.sleep(0.2)
    raise AssertionError("the demo images were not all analyzed in time")


@pytest.mark.parametrize("name", [*NAMES, "plain.jpg", "a;b=c.jpg", "tab\there.jpg"])
def test_the_header_carries_any_name_back(name: str) -> None:
    header = content_disposition(name)
    header.encode("latin-1")  # what an HTTP header can carry
    expected = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    assert from_content_disposition(header) == expected


def test_old_clients_headers_are_read() -> None:
    assert from_content_disposition('attachment; filename="a \\"b\\".jpg"') == 'a "b".jpg'
    assert from_content_disposition("attachment; filename*=ISO-8859-1''%E9t%E9.jpg") == "été.jpg"
    assert from_content_disposition("inline; filename=dir/x.jpg") == "x.jpg"
    assert json.dumps(from_content_disposition("attachment")) == "null"
