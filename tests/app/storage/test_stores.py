"""Every ObjectStore implementation behaves the same: LocalStore on a tmp dir, S3Store on a real SeaweedFS."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from minio import Minio

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode
from app.storage import open_store
from app.storage.base import ObjectNotFound, ObjectStore, PartsRejected, UploadGone
from app.storage.local import LocalStore
from app.storage.s3 import S3Store
from tests.utils.seaweedfs import SeaweedFS

MiB = 1024 * 1024
PART = 16 * MiB  # S3Store's multipart part size


class RandomStream(io.RawIOBase):
    """`size` random bytes, read once and not seekable like an upload body; remembers the sha256 it handed out.

    With `fail_after` it raises OSError once that many bytes were read (a client that goes away mid-upload).
    """

    def __init__(self, size: int, fail_after: int | None = None) -> None:
        self.left = size
        self.fail_after = fail_after
        self.sent = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise OSError("client went away")
        n = min(len(buffer), self.left, 4 * MiB)
        data = os.urandom(n)
        buffer[:n] = data
        self.sha256.update(data)
        self.left -= n
        self.sent += n
        return n


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def settings(tmp_path: Path, **kwargs: object) -> Settings:
    # Explicit values win over AIP_* variables in the environment, so the test does not depend on them.
    values: dict[str, object] = {"s3_endpoint": "", "s3_access_key": "", "s3_secret_key": "", "secret_key": "t"}
    return Settings(data_dir=tmp_path, **(values | kwargs))


def test_put_and_get_bytes(store: ObjectStore) -> None:
    store.put_bytes("datasets/1/v1/data.csv", b"a,b\n1,2\n")
    assert store.get_bytes("datasets/1/v1/data.csv") == b"a,b\n1,2\n"
    store.put_bytes("datasets/1/v1/data.csv", b"replaced")
    assert store.get_bytes("datasets/1/v1/data.csv") == b"replaced"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""


@pytest.mark.parametrize("known_size", [True, False], ids=["sized", "unsized"])
def test_put_file_multipart_stream_round_trips(store: ObjectStore, tmp_path: Path, known_size: bool) -> None:
    size = 2 * PART + 12345  # three parts for minio
    source = RandomStream(size)
    store.put_file("models/7/model.bin", source, size if known_size else -1)
    expected = source.sha256.hexdigest()

    store.download("models/7/model.bin", tmp_path / "model.bin")
    assert (tmp_path / "model.bin").stat().st_size == size
    assert file_sha256(tmp_path / "model.bin") == expected
    assert hashlib.sha256(store.get_bytes("models/7/model.bin")).hexdigest() == expected
    if isinstance(store, S3Store):  # it really went up as a multipart upload of 3 parts
        stat = store.client.stat_object(store.bucket, store.name("models/7/model.bin"))
        assert stat.etag is not None and stat.etag.endswith("-3")


def test_failed_upload_leaves_no_object(store: ObjectStore) -> None:
    with pytest.raises(OSError, match="client went away"):
        store.put_file("models/8/model.bin", RandomStream(3 * PART, fail_after=PART + MiB), -1)
    assert not store.exists("models/8/model.bin")
    assert list(store.list()) == []


def test_download(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("a/b.txt", b"hello")
    store.download("a/b.txt", tmp_path / "b.txt")
    assert (tmp_path / "b.txt").read_bytes() == b"hello"


def test_missing_object_is_not_found(store: ObjectStore, tmp_path: Path) -> None:
    for call in (
        lambda: store.get_bytes("no/such/key"),
        lambda: store.download("no/such/key", tmp_path / "out"),
        lambda: store.download_hashing("no/such/key", tmp_path / "out"),
    ):
        with pytest.raises(ObjectNotFound) as raised:
            call()
        assert raised.value.code is ErrorCode.NOT_FOUND and raised.value.key == "no/such/key"
        assert "AIP_STORAGE_URL" in raised.value.message


def test_download_hashing_streams_and_hashes(store: ObjectStore, tmp_path: Path) -> None:
    size = PART + 12345  # two ranges on S3
    source = RandomStream(size)
    store.put_file("a/big.bin", source, size)
    blocks: list[bytes] = []
    digest = store.download_hashing("a/big.bin", tmp_path / "big.bin", blocks.append)
    assert digest == source.sha256.hexdigest() == file_sha256(tmp_path / "big.bin")
    assert sum(map(len, blocks)) == size


def test_multipart_capability_where_the_store_has_it(store: ObjectStore) -> None:
    multipart = store.multipart
    if isinstance(store, LocalStore):
        assert multipart is None
        return
    assert multipart is not None and multipart.min_part_bytes == 5 * MiB
    first, last = os.urandom(5 * MiB), b"tail"
    upload_id = multipart.create("joined/file.bin")
    assert list(multipart.uploads("joined/")) == [("joined/file.bin", upload_id)]
    etags = [
        multipart.upload_part("joined/file.bin", upload_id, number, data, hashlib.sha256(data).hexdigest())
        for number, data in ((1, first), (2, last))
    ]
    assert multipart.part("joined/file.bin", upload_id, 2) == multipart.list_parts("joined/file.bin", upload_id)[1]
    assert multipart.part("joined/file.bin", upload_id, 3) is None
    with pytest.raises(PartsRejected):  # an ETag other than the part's
        multipart.complete("joined/file.bin", upload_id, [(1, "0" * 32, hashlib.sha256(first).hexdigest())])
    multipart.complete(
        "joined/file.bin",
        upload_id,
        [(n, etag, hashlib.sha256(d).hexdigest()) for n, etag, d in ((1, etags[0], first), (2, etags[1], last))],
    )
    assert store.get_bytes("joined/file.bin") == first + last
    assert list(multipart.uploads("joined/")) == []
    with pytest.raises(UploadGone):  # completed: no more parts
        multipart.upload_part("joined/file.bin", upload_id, 3, last, hashlib.sha256(last).hexdigest())
    multipart.abort("joined/file.bin", upload_id)  # gone already: not an error


def test_unreachable_s3_is_an_aip_error_that_names_the_setting() -> None:
    with pytest.raises(AipError) as raised:
        S3Store(bucket="aip-test", prefix="", endpoint="127.0.0.1:9", access_key="a", secret_key="s", secure=False)
    assert raised.value.code is ErrorCode.UNAVAILABLE and "AIP_S3_ENDPOINT" in raised.value.message


def test_wrong_s3_credentials_are_an_aip_error_that_names_the_setting(seaweedfs: SeaweedFS) -> None:
    store = S3Store(
        bucket="aip-test",
        prefix="tests/creds",
        endpoint=seaweedfs.endpoint,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        secure=False,
    )
    store.client = Minio(seaweedfs.endpoint, access_key=seaweedfs.access_key, secret_key="wrong", secure=False)
    with pytest.raises(AipError) as raised:
        store.put_bytes("k", b"v")
    assert raised.value.code is ErrorCode.UNAVAILABLE and "AIP_S3_SECRET_KEY" in raised.value.message


def test_unwritable_local_store_is_an_aip_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    (store.root / "a").write_bytes(b"a file where a folder would go")
    with pytest.raises(AipError) as raised:
        store.put_bytes("a/b.txt", b"x")
    assert raised.value.code is ErrorCode.UNAVAILABLE and "AIP_STORAGE_URL" in raised.value.message


def test_exists(store: ObjectStore) -> None:
    assert not store.exists("a/b.txt")
    store.put_bytes("a/b.txt", b"x")
    assert store.exists("a/b.txt")
    assert not store.exists("a")  # a "directory" is not an object


def test_a_key_prefix_is_not_an_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("d/x", b"1")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("d")
    with pytest.raises(ObjectNotFound):
        store.download("d", tmp_path / "out")
    store.delete("d")  # no object "d": nothing to do
    assert store.exists("d/x")


def test_delete(store: ObjectStore) -> None:
    store.put_bytes("a/b.txt", b"x")
    store.put_bytes("a/c.txt", b"y")
    store.delete("a/b.txt")
    assert not store.exists("a/b.txt")
    assert store.exists("a/c.txt")
    store.delete("a/b.txt")  # missing is fine
    store.delete("never/there")


def test_delete_prefix(store: ObjectStore) -> None:
    for key in ("datasets/1/v1/a.csv", "datasets/1/v2/a.csv", "datasets/10/v1/a.csv", "models/1/m.bin"):
        store.put_bytes(key, b"x")
    assert store.delete_prefix("datasets/1/") == 2
    assert sorted(store.list()) == ["datasets/10/v1/a.csv", "models/1/m.bin"]
    assert store.delete_prefix("nothing/here/") == 0


def test_list_with_prefix(store: ObjectStore) -> None:
    keys = ["datasets/1/v1/a.csv", "datasets/1/v2/a.csv", "datasets/10/v1/a.csv", "models/1/m.bin"]
    for key in keys:
        store.put_bytes(key, b"x")
    assert sorted(store.list()) == keys
    assert sorted(store.list("datasets/1/")) == keys[:2]
    assert sorted(store.list("datasets/1")) == keys[:3]  # a plain string prefix, as in S3
    assert list(store.list("nothing/")) == []


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/abs", "a//b", "a/", "", ".", "./a"])
def test_invalid_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="Invalid object key"):
        store.put_bytes(key, b"x")
    with pytest.raises(ValueError, match="Invalid object key"):
        store.get_bytes(key)
    with pytest.raises(ValueError, match="Invalid object key"):
        store.exists(key)
    with pytest.raises(ValueError, match="Invalid object key"):
        store.delete(key)


def test_local_store_leaves_no_temp_files_and_prunes_empty_dirs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    store.put_file("a/b/c.bin", RandomStream(3 * MiB))
    store.put_bytes("a/b/c.bin", b"again")
    store.put_bytes("a/keep.txt", b"x")
    assert [p.name for p in store.root.rglob(".tmp-*")] == []

    store.delete("a/b/c.bin")
    assert not (store.root / "a" / "b").exists()  # emptied dir pruned
    assert (store.root / "a").is_dir()  # still holds keep.txt
    store.delete_prefix("a/")
    assert list(store.root.iterdir()) == []  # pruned up to, not including, the root
    assert store.root.is_dir()


def test_open_store_default_is_local_in_data_dir(tmp_path: Path) -> None:
    store = open_store(settings(tmp_path))
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "objects").resolve()


def test_open_store_file_url(tmp_path: Path) -> None:
    store = open_store(settings(tmp_path, storage_url=f"file://{tmp_path / 'elsewhere'}"))
    assert isinstance(store, LocalStore)
    assert store.url == f"file://{(tmp_path / 'elsewhere').resolve()}"


def test_open_store_s3_url(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    store = open_store(
        settings(
            tmp_path,
            storage_url="s3://aip-test/team/objects/",
            s3_endpoint=seaweedfs.endpoint,
            s3_access_key=seaweedfs.access_key,
            s3_secret_key=seaweedfs.secret_key,
        )
    )
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.url) == ("aip-test", "team/objects", "s3://aip-test/team/objects")
    store.put_bytes("k", b"v")
    assert store.get_bytes("k") == b"v"
    store.delete("k")


def test_open_store_s3_without_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AIP_S3_ENDPOINT"):
        open_store(settings(tmp_path, storage_url="s3://bucket/prefix"))


@pytest.mark.parametrize("url", ["ftp://host/objects", "gs://bucket", "/plain/path"])
def test_open_store_unknown_scheme_is_a_clear_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match=r"Unknown storage URL scheme .* use one of: file://, s3://"):
        open_store(settings(tmp_path, storage_url=url))
