"""The ObjectStore contract, run against every store: a test class mixes this in and gives `store`."""

from __future__ import annotations

import hashlib
from uuid import uuid4

import pytest

from shared.objectstore import InvalidKey, ObjectNotFound, ObjectStore

ESCAPING_KEYS = [
    "",
    "../outside.jpg",
    "a/../../outside.jpg",
    "a/..",
    "./a.jpg",
    "/etc/passwd",
    "a//b.jpg",
    "a/b/",
    "a\\..\\b.jpg",
    "a\x00b.jpg",
    "line\nbreak.jpg",
    "x" * 1025,
]
FUNNY_KEYS = ["with space.jpg", "plus+sign.jpg", "paren (1).jpg", "ünïcødé/日本.jpg", "a/b/c/d/deep.png"]


class StoreContract:
    @pytest.fixture
    def bucket(self, store: ObjectStore) -> str:
        name = f"t-{uuid4().hex[:12]}"
        store.ensure_bucket(name)
        return name

    def test_put_returns_info_and_get_returns_the_bytes(self, store: ObjectStore, bucket: str) -> None:
        data = b"\x89PNG fake image bytes"
        info = store.put(bucket, "images/a.png", data, "image/png", {"owner": "alice"})
        assert (info.bucket, info.key, info.size) == (bucket, "images/a.png", len(data))
        assert info.etag == hashlib.md5(data).hexdigest()
        assert info.content_type == "image/png" and dict(info.user_metadata) == {"owner": "alice"}
        assert store.get(bucket, "images/a.png") == data

    def test_stat_round_trips_content_type_and_user_metadata(self, store: ObjectStore, bucket: str) -> None:
        store.put(bucket, "a.jpg", b"jpeg", "image/jpeg", {"Owner": "alice", "x-amz-meta-source": "cli"})
        info = store.stat(bucket, "a.jpg")
        assert info is not None
        assert (info.size, info.etag, info.content_type) == (
            4,
            hashlib.md5(b"jpeg").hexdigest(),
            "image/jpeg",
        )
        assert dict(info.user_metadata) == {"owner": "alice", "source": "cli"}
        assert info.last_modified.tzinfo is not None

    def test_missing_objects(self, store: ObjectStore, bucket: str) -> None:
        assert store.stat(bucket, "nope.jpg") is None
        with pytest.raises(ObjectNotFound):
            store.get(bucket, "nope.jpg")
        assert list(store.list(f"t-missing-{uuid4().hex[:8]}")) == []

    def test_overwrite_replaces_bytes_and_metadata(self, store: ObjectStore, bucket: str) -> None:
        store.put(bucket, "a.bin", b"one", "application/octet-stream", {"v": "1"})
        store.put(bucket, "a.bin", b"second", "text/plain", {"w": "2"})
        info = store.stat(bucket, "a.bin")
        assert info is not None and (info.size, info.content_type) == (6, "text/plain")
        assert dict(info.user_metadata) == {"w": "2"} and store.get(bucket, "a.bin") == b"second"

    def test_empty_object(self, store: ObjectStore, bucket: str) -> None:
        info = store.put(bucket, "empty.txt", b"", "text/plain")
        assert info.size == 0 and info.etag == hashlib.md5(b"").hexdigest()
        assert store.get(bucket, "empty.txt") == b""

    @pytest.mark.parametrize("key", FUNNY_KEYS)
    def test_keys_that_need_escaping_round_trip(self, store: ObjectStore, bucket: str, key: str) -> None:
        store.put(bucket, key, key.encode(), "image/jpeg")
        assert store.get(bucket, key) == key.encode()
        assert [i.key for i in store.list(bucket)] == [key]

    def test_list_is_recursive_ordered_and_filtered_by_prefix(self, store: ObjectStore, bucket: str) -> None:
        keys = ["b.jpg", "a/1.jpg", "a/2/x.jpg", "a.b", "ab/3.jpg", "c/d/e/f.jpg"]
        for key in keys:
            store.put(bucket, key, key.encode(), "image/jpeg", {"k": "v"})
        assert [i.key for i in store.list(bucket)] == sorted(keys, key=str.encode)
        assert [i.key for i in store.list(bucket, "a/")] == ["a/1.jpg", "a/2/x.jpg"]
        assert [i.key for i in store.list(bucket, "a")] == ["a.b", "a/1.jpg", "a/2/x.jpg", "ab/3.jpg"]
        assert [i.key for i in store.list(bucket, "c/d/e/f")] == ["c/d/e/f.jpg"]
        assert list(store.list(bucket, "zzz")) == []
        listed = next(iter(store.list(bucket, "b.")))
        assert (listed.size, listed.content_type, dict(listed.user_metadata)) == (5, "image/jpeg", {"k": "v"})
        assert listed.etag == hashlib.md5(b"b.jpg").hexdigest()

    def test_delete_is_idempotent(self, store: ObjectStore, bucket: str) -> None:
        store.put(bucket, "x/y/z.jpg", b"z", "image/jpeg")
        store.put(bucket, "x/keep.jpg", b"k", "image/jpeg")
        store.delete(bucket, "x/y/z.jpg")
        store.delete(bucket, "x/y/z.jpg")
        store.delete(bucket, "never/was.jpg")
        assert store.stat(bucket, "x/y/z.jpg") is None
        assert [i.key for i in store.list(bucket)] == ["x/keep.jpg"]

    @pytest.mark.parametrize("key", ESCAPING_KEYS)
    def test_keys_that_could_escape_are_rejected(self, store: ObjectStore, bucket: str, key: str) -> None:
        with pytest.raises(InvalidKey):
            store.put(bucket, key, b"x", "image/jpeg")
        with pytest.raises(InvalidKey):
            store.get(bucket, key)
        with pytest.raises(InvalidKey):
            store.stat(bucket, key)
        with pytest.raises(InvalidKey):
            store.delete(bucket, key)

    @pytest.mark.parametrize("prefix", ["../", "/abs", "a/../", "a\\b", "a//"])
    def test_prefixes_that_could_escape_are_rejected(
        self, store: ObjectStore, bucket: str, prefix: str
    ) -> None:
        with pytest.raises(InvalidKey):
            list(store.list(bucket, prefix))

    @pytest.mark.parametrize("name", ["..", "../x", "A-Upper", "ab", ".meta", "a/b", "x" * 64])
    def test_bad_bucket_names_are_rejected(self, store: ObjectStore, name: str) -> None:
        with pytest.raises(InvalidKey):
            store.ensure_bucket(name)
        with pytest.raises(InvalidKey):
            store.stat(name, "a.jpg")

    def test_metadata_must_fit_in_s3_headers(self, store: ObjectStore, bucket: str) -> None:
        with pytest.raises(ValueError, match="US-ASCII"):
            store.put(bucket, "a.jpg", b"x", "image/jpeg", {"name": "café"})
        with pytest.raises(ValueError, match="metadata name"):
            store.put(bucket, "a.jpg", b"x", "image/jpeg", {"bad name": "x"})
        assert store.stat(bucket, "a.jpg") is None

    def test_ensure_bucket_is_idempotent(self, store: ObjectStore, bucket: str) -> None:
        store.ensure_bucket(bucket)
        store.put(bucket, "a.jpg", b"x", "image/jpeg")
        store.ensure_bucket(bucket)
        assert store.get(bucket, "a.jpg") == b"x"
