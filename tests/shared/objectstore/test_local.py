"""LocalObjectStore: the ObjectStore contract, plus what a folder store adds (files dropped in by hand)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from shared.objectstore import InvalidKey, ObjectNotFound
from shared.objectstore.factory import open_store
from shared.objectstore.local import TEMP_PREFIX, LocalObjectStore
from shared.settings import from_env
from tests.shared.objectstore.contract import StoreContract


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "buckets")


class TestLocalContract(StoreContract):
    pass


def test_objects_are_plain_files_and_metadata_lives_outside_the_bucket(store: LocalObjectStore) -> None:
    store.ensure_bucket("uploads")
    store.put("uploads", "2024/cat photo.jpg", b"meow", "image/jpeg", {"owner": "alice"})
    assert (store.root / "uploads" / "2024" / "cat photo.jpg").read_bytes() == b"meow"
    files = sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())
    assert files[-1] == "uploads/2024/cat photo.jpg"
    assert all(f.startswith(".meta/uploads/") and f.endswith(".json") for f in files[:-1]) and len(files) == 2


def test_a_file_dropped_in_by_hand_is_an_object(store: LocalObjectStore) -> None:
    store.ensure_bucket("uploads")
    folder = store.root / "uploads" / "dropped"
    folder.mkdir()
    (folder / "picture.PNG").write_bytes(b"png bytes")
    info = store.stat("uploads", "dropped/picture.PNG")
    assert info is not None
    assert (info.size, info.content_type, dict(info.user_metadata)) == (9, "image/png", {})
    assert info.etag == hashlib.md5(b"png bytes").hexdigest()
    assert store.get("uploads", "dropped/picture.PNG") == b"png bytes"
    assert [i.key for i in store.list("uploads")] == ["dropped/picture.PNG"]
    (folder / "notes.unknownext").write_bytes(b"?")
    assert store.stat("uploads", "dropped/notes.unknownext").content_type == "application/octet-stream"  # type: ignore[union-attr]


def test_a_file_replaced_by_hand_no_longer_uses_the_old_metadata(store: LocalObjectStore) -> None:
    store.ensure_bucket("uploads")
    store.put("uploads", "a.bin", b"old", "image/webp", {"owner": "alice"})
    path = store.root / "uploads" / "a.bin"
    path.write_bytes(b"new content")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    info = store.stat("uploads", "a.bin")
    assert info is not None and dict(info.user_metadata) == {}
    assert (info.content_type, info.etag) == (
        "application/octet-stream",
        hashlib.md5(b"new content").hexdigest(),
    )


def test_temp_files_and_symlinks_are_not_objects(store: LocalObjectStore, tmp_path: Path) -> None:
    store.ensure_bucket("uploads")
    store.put("uploads", "real.jpg", b"x", "image/jpeg")
    (store.root / "uploads" / f"{TEMP_PREFIX}abc").write_bytes(b"half written")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    (store.root / "uploads" / "link.txt").symlink_to(secret)
    (store.root / "uploads" / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    assert [i.key for i in store.list("uploads")] == ["real.jpg"]
    assert store.stat("uploads", "link.txt") is None
    with pytest.raises(ObjectNotFound):
        store.get("uploads", "link.txt")
    with pytest.raises(InvalidKey):
        store.get("uploads", "linkdir/secret.txt")
    with pytest.raises(InvalidKey):
        store.put("uploads", f"{TEMP_PREFIX}x", b"x", "image/jpeg")


def test_delete_prunes_empty_folders_but_keeps_the_bucket(store: LocalObjectStore) -> None:
    store.ensure_bucket("uploads")
    store.put("uploads", "a/b/c/d.jpg", b"x", "image/jpeg")
    store.put("uploads", "a/keep.jpg", b"x", "image/jpeg")
    store.delete("uploads", "a/b/c/d.jpg")
    assert not (store.root / "uploads" / "a" / "b").exists()
    assert (store.root / "uploads" / "a" / "keep.jpg").exists()
    store.delete("uploads", "a/keep.jpg")
    assert list((store.root / "uploads").iterdir()) == []
    assert list((store.root / ".meta" / "uploads").iterdir()) == []


def test_a_failed_write_leaves_the_old_object_and_no_temp_file(
    store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ensure_bucket("uploads")
    store.put("uploads", "a.jpg", b"old", "image/jpeg")
    real_replace = os.replace

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "a.jpg":
            raise OSError("disk on fire")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        store.put("uploads", "a.jpg", b"new", "image/jpeg")
    monkeypatch.undo()
    assert store.get("uploads", "a.jpg") == b"old"
    assert [p.name for p in (store.root / "uploads").iterdir()] == ["a.jpg"]


def test_an_object_and_a_folder_cannot_share_a_name(store: LocalObjectStore) -> None:
    store.ensure_bucket("uploads")
    store.put("uploads", "a", b"x", "text/plain")
    with pytest.raises(InvalidKey):
        store.put("uploads", "a/b.jpg", b"x", "image/jpeg")
    store.put("uploads", "d/e.jpg", b"x", "image/jpeg")
    with pytest.raises(InvalidKey):
        store.put("uploads", "d", b"x", "text/plain")
    assert store.stat("uploads", "d") is None


def test_a_bucket_folder_made_by_hand_is_a_bucket(store: LocalObjectStore) -> None:
    (store.root / "manual" / "sub").mkdir(parents=True)
    shutil.copyfile(__file__, store.root / "manual" / "sub" / "test.py")
    assert [i.key for i in store.list("manual")] == ["sub/test.py"]


def test_open_store_picks_local_by_default(tmp_path: Path) -> None:
    store = open_store(from_env({"DATAFROST_DATA_DIR": str(tmp_path)}))
    assert isinstance(store, LocalObjectStore) and store.root == (tmp_path / "buckets").resolve()
    with pytest.raises(ValueError, match="DATAFROST_STORE"):
        open_store(from_env({"DATAFROST_STORE": "ftp://x"}))
