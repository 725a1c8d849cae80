"""S3ObjectStore against a real S3-compatible server on loopback (moto), with the minio client."""

from __future__ import annotations

import pytest

from shared.objectstore.factory import open_store
from shared.objectstore.s3 import S3ObjectStore, parse_store_url
from shared.settings import from_env
from tests.shared.objectstore.contract import StoreContract
from tests.support.s3 import ACCESS_KEY, SECRET_IN_URL, SECRET_KEY


@pytest.fixture
def store(s3_url: str) -> S3ObjectStore:
    return S3ObjectStore(s3_url)


class TestS3Contract(StoreContract):
    pass


def test_credentials_are_percent_decoded_and_never_shown(s3_url: str) -> None:
    endpoint, secure, access_key, secret_key = parse_store_url(s3_url)
    assert (access_key, secret_key, secure) == (ACCESS_KEY, SECRET_KEY, False)
    assert endpoint.startswith("127.0.0.1:")
    shown = repr(S3ObjectStore(s3_url))
    assert shown == f"S3ObjectStore(endpoint='http://{endpoint}')"
    assert SECRET_KEY not in shown and SECRET_IN_URL not in shown and ACCESS_KEY not in shown


@pytest.mark.parametrize(
    "url",
    [
        "ftp://k:s@host:9000",
        "http://host:9000",
        "http://k@host:9000",
        "http://k:s@:9000",
        "http://k:s@host:9000/bucket",
        "http://k:s@host:notaport",
    ],
)
def test_bad_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError) as failure:
        S3ObjectStore(url)
    assert "k:s" not in str(failure.value) and "host" not in str(failure.value)


def test_open_store_picks_s3_for_a_url(s3_url: str) -> None:
    store = open_store(from_env({"DATAFROST_STORE": s3_url}))
    assert isinstance(store, S3ObjectStore)
    store.ensure_bucket("factory-bucket")
    store.put("factory-bucket", "a.txt", b"hello", "text/plain")
    assert store.get("factory-bucket", "a.txt") == b"hello"


def test_ipv6_endpoints_keep_their_brackets() -> None:
    assert parse_store_url("https://k:s@[::1]:9000")[:2] == ("[::1]:9000", True)


def test_presigned_put_url_lets_its_holder_put_that_one_object(store: S3ObjectStore) -> None:
    from datetime import timedelta

    import urllib3

    store.ensure_bucket("presigned")
    url = store.presigned_put_url("presigned", "alice/one.jpg", timedelta(seconds=60))
    http = urllib3.PoolManager(retries=False)
    assert http.request("PUT", url, body=b"\xff\xd8\xffdata").status == 200
    assert store.get("presigned", "alice/one.jpg") == b"\xff\xd8\xffdata"
    # The URL is bound to this one key, PUT only, by its SigV4 signature (moto does not check signatures,
    # so that part is MinIO's to enforce and is not asserted here).
    assert "X-Amz-Signature=" in url and "/presigned/alice/one.jpg?" in url and "X-Amz-Expires=60" in url
