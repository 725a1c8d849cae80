"""The README's bucket drop works as written, and `datafrost token --user NAME` makes a dev user
(issue 12 item 7): the demo user's uploads folder exists at start, a new user gets a token the catalog
accepts and a folder whose files are theirs; a platform without the dev issuer refuses in one line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.support.images import jpeg
from tests.support.platform import DevProcess


def listed_images(dev: DevProcess, token: str) -> tuple[int, Any]:
    response = dev.http.request(
        "GET", dev.url + "/catalog/images", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return response.status, json.loads(response.data)


def wait_listed(dev: DevProcess, token: str, key: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = listed_images(dev, token)
        assert status == 200, body
        found = [image for image in body["images"] if image["key"] == key]
        if found:
            return dict(found[0])
        time.sleep(0.2)
    raise AssertionError(f"{key} never appeared in the owner's catalog listing")


def test_token_user_makes_a_dev_user_who_sees_a_dropped_image(tmp_path: Path) -> None:
    dev = DevProcess(tmp_path / "data").start()
    try:
        uploads = dev.data_dir / "buckets" / "uploads"
        assert (uploads / "demo").is_dir()  # `cp photo.jpg .datafrost/buckets/uploads/demo/` works at once
        made = dev.cli("token", "--user", "bob")
        assert made.returncode == 0, made.stderr
        bob = made.stdout.strip()
        status, body = listed_images(dev, bob)
        assert (status, body["images"]) == (200, [])  # the catalog accepts bob's token
        again = dev.cli("token", "--user", "bob")  # bob exists now: just a token
        assert again.returncode == 0, again.stderr
        assert (uploads / "bob").is_dir()
        (uploads / "bob" / "photo.jpg").write_bytes(jpeg((64, 48)))  # as `cp photo.jpg` does
        image = wait_listed(dev, bob, "bob/photo.jpg")
        assert image["owner"] == "bob"
        demo = dev.cli("token").stdout.strip()
        assert all(i["key"] != "bob/photo.jpg" for i in listed_images(dev, demo)[1]["images"])

        bad = dev.cli("token", "--user", "../bob")
        assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1, bad.stderr
        assert "user name" in bad.stderr
    finally:
        dev.stop()


def test_without_the_dev_issuer_token_user_is_refused_in_one_line(tmp_path: Path) -> None:
    issuer = "http://127.0.0.1:9/realms/elsewhere"  # a real identity provider's realm, not reached here
    dev = DevProcess(tmp_path / "data", env={"DATAFROST_AUTH_ISSUER": issuer}).start()
    try:
        result = dev.cli("token", "--user", "bob")
        assert result.returncode == 1
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
        assert "no dev issuer" in result.stderr
        assert (
            not (dev.data_dir / "auth" / "users.json").exists()
            or "bob" not in (dev.data_dir / "auth" / "users.json").read_text()
        )
    finally:
        dev.stop()
