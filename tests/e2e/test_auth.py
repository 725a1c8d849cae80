"""Auth through `datafrost dev`: the gateway's ext-authz check, owners, roles, no secrets in logs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventing.cloudevent import new_event
from eventing.http_codec import to_binary
from tests.support import images
from tests.support.platform import DevProcess, add_dev_users


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    data_dir = tmp_path_factory.mktemp("auth") / "data"
    add_dev_users(data_dir, {"alice": ["editor"], "bob": ["editor"], "victor": ["viewer"]})
    platform = DevProcess(data_dir, "--keep-warm").start()
    yield platform
    platform.stop()


def upload_as(dev: DevProcess, user: str) -> str:
    return dev.upload_ready(user, images.jpeg((64, 48)))


def test_owners_see_only_their_images_and_a_foreign_id_is_404(dev: DevProcess) -> None:
    alice_image, bob_image = upload_as(dev, "alice"), upload_as(dev, "bob")
    _, alice_list = dev.json("GET", "/catalog/images", user="alice")
    assert [i["id"] for i in alice_list["images"]] == [alice_image]
    assert alice_list["images"][0]["owner"] == "alice"
    for method, path in (
        ("GET", f"/catalog/images/{bob_image}"),
        ("GET", f"/catalog/images/{bob_image}/variants/thumb"),
        ("DELETE", f"/catalog/images/{bob_image}"),
        ("GET", f"/catalog/images?similar_to={bob_image}"),
    ):
        response = dev.request(method, path, user="alice")
        assert response.status == 404, (method, path, response.status)
    assert dev.json("GET", f"/catalog/images/{bob_image}", user="bob")[0] == 200  # bob's image survived
    _, everything = dev.json("GET", "/catalog/images", user="admin")
    assert {alice_image, bob_image} <= {i["id"] for i in everything["images"]}
    assert dev.request("DELETE", f"/catalog/images/{bob_image}", user="admin").status == 204


def test_roles_decide_what_a_valid_token_may_do(dev: DevProcess) -> None:
    viewer_upload = dev.request("POST", "/upload", user="victor", body=images.jpeg((8, 8)))
    assert viewer_upload.status == 403 and "editor" in json.loads(viewer_upload.data)["error"]
    assert dev.json("GET", "/catalog/images", user="victor")[0] == 200
    headers, body = to_binary(new_event("io.test.x", "tests"))
    assert dev.request("POST", "/brokers/default", user="alice", headers=headers, body=body).status == 403
    assert dev.request("POST", "/brokers/default", user="admin", headers=headers, body=body).status == 202
    assert dev.request("GET", "/brokers/default/triggers", user="alice").status == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/catalog/images"),
        ("POST", "/upload"),
        ("POST", "/brokers/default"),
        ("POST", "/catalog/"),  # a function's event endpoint: internal only
        ("GET", "/dead-letters/"),
        ("GET", "/functions"),
    ],
)
def test_no_token_is_a_401_with_a_reason(dev: DevProcess, method: str, path: str) -> None:
    response = dev.request(method, path, user=None)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "authentication required" in json.loads(response.data)["error"]


def test_a_token_in_the_query_string_is_not_accepted(dev: DevProcess) -> None:
    token = dev.token("alice")
    response = dev.request("GET", f"/catalog/images?access_token={token}", user=None)
    assert response.status == 401


def test_forged_identity_headers_are_dropped(dev: DevProcess) -> None:
    forged = {"x-datafrost-user": "bob", "x-datafrost-roles": "admin"}
    _, listing = dev.json("GET", "/catalog/images", user="alice")
    response = dev.request("GET", "/catalog/images", user="alice", headers=forged)
    assert json.loads(response.data) == listing


def test_public_routes_need_no_token(dev: DevProcess) -> None:
    discovery = dev.request("GET", "/authz/realms/datafrost/.well-known/openid-configuration", user=None)
    assert discovery.status == 200
    assert json.loads(discovery.data)["issuer"] == f"{dev.url}/authz/realms/datafrost"
    assert (
        dev.request("GET", "/authz/realms/datafrost/protocol/openid-connect/certs", user=None).status == 200
    )
    assert dev.request("GET", "/catalog/healthz", user=None).status == 200


def test_password_grant_through_the_gateway(dev: DevProcess) -> None:
    form = "grant_type=password&client_id=datafrost&username=alice&password=alice-secret-pw"
    response = dev.request(
        "POST", "/authz/realms/datafrost/protocol/openid-connect/token", user=None, body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert response.status == 200
    token = json.loads(response.data)["access_token"]
    listing = dev.request("GET", "/catalog/images", user=None, headers={"Authorization": f"Bearer {token}"})
    assert listing.status == 200
    wrong = dev.request(
        "POST", "/authz/realms/datafrost/protocol/openid-connect/token", user=None,
        body=form.replace("alice-secret-pw", "guess"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert wrong.status == 401 and json.loads(wrong.data)["error"] == "invalid_grant"


def test_no_token_or_secret_reaches_any_log_line(dev: DevProcess) -> None:
    secrets: list[str] = [dev.token(user) for user in ("alice", "bob", "admin", "victor")]
    secrets += ["alice-secret-pw", "guess"]
    broken = secrets[0][:-4] + "AAAA"  # a tampered token: refused, and its text never logged either
    assert (
        dev.request("GET", "/catalog/images", user=None, headers={"Authorization": f"Bearer {broken}"}).status
        == 401
    )
    secrets.append(broken)
    realm = json.loads((dev.data_dir / "auth" / "service-client.json").read_text())
    secrets += [str(v) for k, v in realm.items() if "secret" in k]
    log_text = dev.log_path.read_text()
    lines: list[dict[str, Any]] = dev.logs()
    assert lines, "the platform logged nothing: the check below would be empty"
    for secret in secrets:
        assert secret not in log_text
    assert "Bearer ey" not in log_text  # no Authorization value of any kind (JWTs start with "ey")
    assert "authorization" not in {k.lower() for line in lines for k in line}


def test_the_cli_uses_the_demo_user_by_default(dev: DevProcess, tmp_path: Path) -> None:
    picture = tmp_path / "cli.jpg"
    picture.write_bytes(images.jpeg((40, 30)))
    result = dev.cli("upload", str(picture))
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.split()[0]
    deadline = time.monotonic() + 30
    path = f"/catalog/images/{image_id}"
    while dev.json("GET", path, user="demo")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dev.json("GET", f"/catalog/images/{image_id}", user="demo")[0] == 200
    assert dev.json("GET", f"/catalog/images/{image_id}", user="alice")[0] == 404
    token = dev.cli("token", "--user", "alice", "--roles", "viewer")
    assert token.returncode == 0 and token.stdout.count(".") == 2


def test_presigned_upload_is_one_put_under_the_callers_prefix(dev: DevProcess) -> None:
    status, grant = dev.json(
        "POST", "/upload/presign", {"filename": "../../etc/passwd.jpg", "expires_in": 60}, user="alice"
    )
    assert status == 200 and grant["method"] == "PUT"
    assert (
        grant["key"].startswith("alice/") and grant["key"].count("/") == 1 and grant["key"].endswith(".jpg")
    )
    url: str = grant["url"]
    path = url[len(dev.url) :]
    tampered = path.replace("alice%2F", "bob%2F").replace("alice/", "bob/")
    assert dev.request("PUT", tampered, user=None, body=images.jpeg((32, 32))).status == 403
    put = dev.request(
        "PUT", path, user=None, body=images.jpeg((32, 32)), headers={"Content-Type": "image/jpeg"}
    )
    assert put.status == 200, put.data
    assert json.loads(put.data)["id"] == grant["id"]
    deadline = time.monotonic() + 30
    while (
        dev.json("GET", f"/catalog/images/{grant['id']}", user="alice")[0] != 200
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert dev.json("GET", f"/catalog/images/{grant['id']}", user="alice")[1]["owner"] == "alice"
    assert dev.json("POST", "/upload/presign", {}, user="victor")[0] == 403  # viewers cannot upload
