"""Direct uploads (presigned S3 multipart) through the service layer, with the client's PUTs sent to a real
SeaweedFS over HTTP, on every selected database backend: parallel out-of-order parts, resume after a client died,
bad checksums / sizes / ETags / whole-file hash as 4xx leaving nothing behind, abort and expiry aborting the
multipart upload, dedup, and the local store staying in API mode."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode
from app.db.models import DatasetVersion, UploadSession, utcnow
from app.db.session import session_scope
from app.services.data import blobs, datasets, upload_complete, upload_parts, upload_storage, uploads
from app.storage import open_store
from app.storage.base import ObjectStore, sha256_b64
from app.storage.local import LocalStore
from tests.utils.data_env import DataEnv, make_env, sha, split
from tests.utils.databases import clean_database, reset_engines, selected_backends
from tests.utils.seaweedfs import SeaweedFS

MiB = 1 << 20
CHUNK = 5 * MiB  # S3's smallest part but the last


@pytest.fixture(params=[pytest.param(b, id=b) for b in selected_backends()])
def s3_env(request: pytest.FixtureRequest, tmp_path: Path, seaweedfs: SeaweedFS) -> Iterator[DataEnv]:
    url = clean_database(request.param, tmp_path)
    yield make_env(tmp_path, url, "s3", seaweedfs)
    reset_engines(url)


@pytest.fixture(scope="module")
def s3_http() -> Iterator[httpx.Client]:
    """The client's own HTTP connection to S3: no platform credentials, only presigned URLs."""
    with httpx.Client(timeout=60) as client:
        yield client


def csv_bytes(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    block = "".join(f"{rng.random():.9f},{rng.randint(0, 999)},{'abc'[i % 3]}\n" for i in range(4000)).encode()
    return b"x,n,label\n" + (block * (size // len(block) + 1))[: size - 10].rsplit(b"\n", 1)[0] + b"\n"


def expect(code: ErrorCode, match: str, call, *args, **kwargs) -> AipError:  # noqa: ANN001
    with pytest.raises(AipError) as err:
        call(*args, **kwargs)
    assert err.value.code is code, err.value.message
    assert match.lower() in err.value.message.lower(), err.value.message
    return err.value


def open_direct(env: DataEnv, dataset_id: int, data: bytes, name: str = "data.csv", **overrides: object) -> str:
    args = {"file_name": name, "size_bytes": len(data), "sha256": sha(data), "chunk_size": CHUNK, **overrides}
    return uploads.create_session(env.settings, store=env.store, user=env.owner, dataset_id=dataset_id, **args)  # type: ignore[arg-type]


def presign(env: DataEnv, dataset_id: int, upload_id: str, index: int, chunk: bytes) -> dict:
    return part_url(env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id, index=index,
                    sha256=sha(chunk))  # fmt: skip


def part_url(settings: Settings, store: ObjectStore, **kwargs: Any) -> dict:
    """A part URL as the route asks for it: in a session of its own."""
    with session_scope(settings.database_url) as session:
        return upload_parts.part_url(session, settings, store, **kwargs)


def report(env: DataEnv, dataset_id: int, upload_id: str, index: int, chunk: bytes, etag: str) -> None:
    upload_parts.report_part(env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id,
                        index=index, size_bytes=len(chunk), sha256=sha(chunk), etag=etag)  # fmt: skip


def send(env: DataEnv, http: httpx.Client, dataset_id: int, upload_id: str, index: int, chunk: bytes) -> None:
    """What the upload client does per chunk: a URL, one PUT straight to S3, a report."""
    grant = presign(env, dataset_id, upload_id, index, chunk)
    assert grant["url"].startswith(env.store.public_url)  # type: ignore[attr-defined]
    response = http.put(grant["url"], content=chunk, headers=grant["headers"])
    assert response.status_code == 200, response.text
    report(env, dataset_id, upload_id, index, chunk, response.headers["etag"])


def complete(env: DataEnv, dataset_id: int, upload_id: str) -> int:
    return upload_complete.complete(env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id)


def received(env: DataEnv, upload_id: str) -> list[int]:
    with session_scope(env.settings.database_url) as session:
        return uploads.received(session, upload_id)


def status(env: DataEnv, upload_id: str) -> str:
    with session_scope(env.settings.database_url) as session:
        return session.get_one(UploadSession, upload_id).status


def multipart_uploads(env: DataEnv) -> list[tuple[str, str]]:
    assert env.store.multipart is not None
    return list(env.store.multipart.uploads())


def test_parallel_out_of_order_parts_go_straight_to_s3(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    env = s3_env
    data = csv_bytes(3 * CHUNK + 12345)  # 4 parts, the last one short
    dataset_id = env.dataset("direct")
    upload_id = open_direct(env, dataset_id, data)
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(UploadSession, upload_id).mode == "direct"
    assert len(multipart_uploads(env)) == 1
    env.assert_no_orphans()  # the open session references its multipart upload
    chunks = list(enumerate(split(data, CHUNK)))
    random.Random(2).shuffle(chunks)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: send(env, s3_http, dataset_id, upload_id, *c), chunks))
    assert received(env, upload_id) == [0, 1, 2, 3]
    assert list(env.store.list("uploads/")) == []  # the parts live in the multipart upload, not as objects

    version_id = complete(env, dataset_id, upload_id)
    with session_scope(env.settings.database_url) as session:
        version = session.get_one(DatasetVersion, version_id)
        assert (version.sha256, version.size_bytes) == (sha(data), len(data))
        assert version.num_rows == data.count(b"\n") - 1
        assert env.store.get_bytes(version.storage_key) == data
    assert complete(env, dataset_id, upload_id) == version_id  # idempotent
    assert status(env, upload_id) == "COMPLETED"
    assert multipart_uploads(env) == []
    env.assert_no_orphans()


def test_resume_after_the_client_died_sends_only_missing_parts(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    env = s3_env
    data = csv_bytes(4 * CHUNK + 100, seed=1)
    dataset_id = env.dataset("direct-resume")
    chunks = split(data, CHUNK)
    upload_id = open_direct(env, dataset_id, data)
    for index in (0, 2):
        send(env, s3_http, dataset_id, upload_id, index, chunks[index])
    # Killed after PUTting chunk 3 but before reporting it: the part is in S3, the platform does not count it.
    grant = presign(env, dataset_id, upload_id, 3, chunks[3])
    assert s3_http.put(grant["url"], content=chunks[3], headers=grant["headers"]).status_code == 200

    assert open_direct(env, dataset_id, data) == upload_id  # declaring the file again resumes the session
    have = received(env, upload_id)
    assert have == [0, 2]
    expect(ErrorCode.INVALID_INPUT, "lacks", complete, env, dataset_id, upload_id)
    for index in sorted(set(range(len(chunks))) - set(have)):
        send(env, s3_http, dataset_id, upload_id, index, chunks[index])
    send(env, s3_http, dataset_id, upload_id, 0, chunks[0])  # a part sent and reported twice counts once
    version_id = complete(env, dataset_id, upload_id)
    with session_scope(env.settings.database_url) as session:
        assert env.store.get_bytes(session.get_one(DatasetVersion, version_id).storage_key) == data
    env.assert_no_orphans()


def test_bad_parts_are_refused_and_leave_nothing(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    env = s3_env
    data = csv_bytes(2 * CHUNK + 999, seed=2)
    chunks = split(data, CHUNK)
    dataset_id = env.dataset("direct-bad")
    upload_id = open_direct(env, dataset_id, data)

    # S3 refuses bytes other than those the URL was signed for, a missing checksum header, another length.
    grant = presign(env, dataset_id, upload_id, 0, chunks[0])
    tampered = chunks[0][:-1] + b"!"
    assert s3_http.put(grant["url"], content=tampered, headers=grant["headers"]).status_code == 400
    assert s3_http.put(grant["url"], content=chunks[0]).status_code == 403
    longer = {**grant["headers"], "content-length": str(CHUNK + 4)}
    assert s3_http.put(grant["url"], content=chunks[0] + b"more", headers=longer).status_code == 403
    expect(ErrorCode.INVALID_INPUT, "no part", report, env, dataset_id, upload_id, 0, chunks[0], "0" * 32)

    response = s3_http.put(grant["url"], content=chunks[0], headers=grant["headers"])
    etag = response.headers["etag"]
    common = {"user": env.owner, "dataset_id": dataset_id, "upload_id": upload_id}
    call = upload_parts.report_part
    expect(ErrorCode.INVALID_INPUT, "etag", call, env.settings, env.store, index=0, size_bytes=CHUNK,
           sha256=sha(chunks[0]), etag="f" * 32, **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "must have", call, env.settings, env.store, index=0, size_bytes=CHUNK - 1,
           sha256=sha(chunks[0]), etag=etag, **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "must have", call, env.settings, env.store, index=2, size_bytes=CHUNK,
           sha256=sha(chunks[0]), etag=etag, **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "out of range", call, env.settings, env.store, index=3, size_bytes=CHUNK,
           sha256=sha(chunks[0]), etag=etag, **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "sha256", call, env.settings, env.store, index=0, size_bytes=CHUNK,
           sha256="zz", etag=etag, **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "out of range", part_url, env.settings, env.store, index=-1,
           sha256=sha(chunks[0]), **common)  # fmt: skip
    expect(ErrorCode.NOT_FOUND, "Upload session", part_url, env.settings, env.store, index=0,
           sha256=sha(chunks[0]), user=env.other, dataset_id=dataset_id, upload_id=upload_id)  # fmt: skip
    assert received(env, upload_id) == []
    report(env, dataset_id, upload_id, 0, chunks[0], etag)
    # Once recorded, a chunk cannot be claimed with other content.
    expect(ErrorCode.CONFLICT, "other content", presign, env, dataset_id, upload_id, 0, chunks[1])
    assert received(env, upload_id) == [0]

    uploads.abort(env.settings, env.store, **common)
    assert multipart_uploads(env) == []  # aborting the session aborted the multipart upload with its parts
    expect(ErrorCode.CONFLICT, "ABORTED", presign, env, dataset_id, upload_id, 1, chunks[1])
    # A URL handed out before the abort cannot store anything any more.
    assert s3_http.put(grant["url"], content=chunks[0], headers=grant["headers"]).status_code >= 400
    assert multipart_uploads(env) == []
    env.assert_no_orphans()


def test_small_chunks_or_local_storage_cannot_go_direct(s3_env: DataEnv, tmp_path: Path) -> None:
    env = s3_env
    dataset_id = env.dataset("direct-modes")
    data = csv_bytes(2 * CHUNK)
    expect(ErrorCode.INVALID_INPUT, "at least 5242880", open_direct, env, dataset_id, data, chunk_size=MiB,
           mode="direct")  # fmt: skip
    # auto falls back to the API for small chunks; a one-chunk file may be small.
    small = open_direct(env, dataset_id, data, chunk_size=MiB, name="small.csv")
    single = open_direct(env, dataset_id, data[: 2 * MiB].rsplit(b"\n", 1)[0] + b"\n", chunk_size=CHUNK)
    api = open_direct(env, dataset_id, data, name="api.csv", mode="api")
    with session_scope(env.settings.database_url) as session:
        modes = {i: session.get_one(UploadSession, i).mode for i in (small, single, api)}
    assert modes == {small: "api", single: "direct", api: "api"}
    expect(ErrorCode.INVALID_INPUT, "through the API", presign, env, dataset_id, small, 0, data[:MiB])
    expect(ErrorCode.INVALID_INPUT, "upload mode", open_direct, env, dataset_id, data, mode="sideways")

    env.settings.upload_direct = False
    expect(ErrorCode.INVALID_INPUT, "AIP_UPLOAD_DIRECT", open_direct, env, dataset_id, data, name="off.csv",
           mode="direct")  # fmt: skip
    local = LocalStore(tmp_path / "objects")
    env.settings.upload_direct = True
    expect(ErrorCode.INVALID_INPUT, "need S3 storage", uploads.create_session, env.settings, store=local,
           user=env.owner, dataset_id=dataset_id, file_name="l.csv", size_bytes=len(data), sha256=sha(data),
           chunk_size=CHUNK, mode="direct")  # fmt: skip
    on_local = uploads.create_session(env.settings, store=local, user=env.owner, dataset_id=dataset_id,
                                      file_name="l.csv", size_bytes=len(data), sha256=sha(data),
                                      chunk_size=CHUNK)  # fmt: skip
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(UploadSession, on_local).mode == "api"
    for upload_id in (small, single, api, on_local):
        uploads.abort(env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id)
    env.assert_no_orphans()


def test_hash_mismatch_at_completion_aborts_and_leaves_nothing(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    env = s3_env
    data = csv_bytes(CHUNK + 500, seed=3)
    dataset_id = env.dataset("direct-hash")
    claimed = sha(data + b"x")
    upload_id = open_direct(env, dataset_id, data, sha256=claimed)
    for index, chunk in enumerate(split(data, CHUNK)):
        send(env, s3_http, dataset_id, upload_id, index, chunk)
    err = expect(ErrorCode.INVALID_INPUT, "declared", complete, env, dataset_id, upload_id)
    assert sha(data) in err.message and claimed in err.message
    assert status(env, upload_id) == "ABORTED"
    assert env.stored_keys() == set()  # no joined object, no blob, no multipart upload
    # Nor did the unverified bytes stay under a blob key of the hash the upload claimed.
    assert not env.store.exists(blobs.blob_key(claimed))
    assert not env.store.exists(blobs.blob_key(claimed, upload_id))


def test_parts_changed_behind_the_platform_never_reach_a_blob(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    env = s3_env
    multipart = env.store.multipart
    assert multipart is not None
    data = csv_bytes(2 * CHUNK + 10, seed=4)
    chunks = split(data, CHUNK)
    dataset_id = env.dataset("direct-replaced")
    upload_id = open_direct(env, dataset_id, data)
    for index, chunk in enumerate(chunks):
        send(env, s3_http, dataset_id, upload_id, index, chunk)
    with session_scope(env.settings.database_url) as session:
        multipart_id = session.get_one(UploadSession, upload_id).multipart_id
    assert multipart_id is not None
    # Part 2 is overwritten with other bytes after it was reported (through a URL signed for those bytes).
    other = b"9" * len(chunks[1])
    url, headers = multipart.presign_part(
        upload_storage.multipart_key(upload_id, sha(data)), multipart_id, 2, sha(other), len(other), 60
    )
    assert s3_http.put(url, content=other, headers=headers).status_code == 200
    # Completion names each part's recorded ETag: S3 either joins the recorded bytes (SeaweedFS keeps them) or
    # refuses the part, which the platform then asks for again (AWS).
    try:
        version_id = complete(env, dataset_id, upload_id)
    except AipError as e:
        assert e.code is ErrorCode.CONFLICT and "Chunk 1 is missing" in e.message, e.message
        assert status(env, upload_id) == "OPEN" and received(env, upload_id) == [0, 2]
        send(env, s3_http, dataset_id, upload_id, 1, chunks[1])
        version_id = complete(env, dataset_id, upload_id)
    with session_scope(env.settings.database_url) as session:
        assert env.store.get_bytes(session.get_one(DatasetVersion, version_id).storage_key) == data
    env.assert_no_orphans()

    # The multipart upload vanishes from storage: the session cannot succeed, it ends with a 4xx.
    again = open_direct(env, dataset_id, data, name="again.csv")
    with session_scope(env.settings.database_url) as session:
        gone = session.get_one(UploadSession, again).multipart_id
    assert gone is not None
    for index, chunk in enumerate(chunks):
        send(env, s3_http, dataset_id, again, index, chunk)
    multipart.abort(upload_storage.multipart_key(again, sha(data)), gone)
    expect(ErrorCode.INVALID_INPUT, "upload the file again", complete, env, dataset_id, again)
    assert status(env, again) == "ABORTED"
    env.assert_no_orphans()


def test_expiry_and_dataset_delete_abort_multipart_uploads(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    env = s3_env
    kept, doomed = env.dataset("direct-kept"), env.dataset("direct-doomed")
    data = [csv_bytes(CHUNK + 100, seed=10 + i) for i in range(2)]
    stale = open_direct(env, kept, data[0])
    send(env, s3_http, kept, stale, 0, split(data[0], CHUNK)[0])
    in_doomed = open_direct(env, doomed, data[1])
    send(env, s3_http, doomed, in_doomed, 1, split(data[1], CHUNK)[1])
    assert len(multipart_uploads(env)) == 2
    env.assert_no_orphans()

    later = utcnow() + dt.timedelta(seconds=env.settings.upload_session_ttl_s + 60)
    with session_scope(env.settings.database_url) as session:
        session.get_one(UploadSession, in_doomed).updated_at = later
    assert uploads.expire_stale(env.settings, env.store, now=later) == [stale]
    assert status(env, stale) == "EXPIRED"
    assert [key for key, _ in multipart_uploads(env)] == [upload_storage.multipart_key(in_doomed, sha(data[1]))]
    env.assert_no_orphans()

    datasets.delete_dataset(env.settings, env.store, user=env.owner, dataset_id=doomed)
    assert multipart_uploads(env) == []
    env.assert_no_orphans()


def test_dedup_with_direct_uploads(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    env = s3_env
    data = csv_bytes(CHUNK + 777, seed=5)
    first_ds, second_ds = env.dataset("direct-dedup-a"), env.dataset("direct-dedup-b")
    upload_id = open_direct(env, first_ds, data)
    for index, chunk in enumerate(split(data, CHUNK)):
        send(env, s3_http, first_ds, upload_id, index, chunk)
    first = complete(env, first_ds, upload_id)
    # S3 joined the parts; the verified object stays where it was copied to while it was checked.
    blob = blobs.blob_key(sha(data), upload_id)
    assert list(env.store.list(blobs.BLOB_PREFIX)) == [blob]
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, first).storage_key == blob

    # The owner can read those bytes already: the new direct session needs no part, and leaves no upload behind.
    again = open_direct(env, second_ds, data)
    with session_scope(env.settings.database_url) as session:
        upload = uploads.get_session(session, user=env.owner, upload_id=again)
        assert uploads.known_content(session, user=env.owner, upload=upload) is not None
    second = complete(env, second_ds, again)
    assert second != first
    assert list(env.store.list(blobs.BLOB_PREFIX)) == [blob]
    assert multipart_uploads(env) == []

    # Another user uploads the same bytes directly: verified, then shared; the blob stays one object.
    other_ds = env.dataset("direct-dedup-other", user=env.other)
    other = uploads.create_session(env.settings, store=env.store, user=env.other, dataset_id=other_ds,
                                   file_name="o.csv", size_bytes=len(data), sha256=sha(data),
                                   chunk_size=CHUNK)  # fmt: skip
    for index, chunk in enumerate(split(data, CHUNK)):
        grant = part_url(env.settings, env.store, user=env.other, dataset_id=other_ds, upload_id=other,
                         index=index, sha256=sha(chunk))  # fmt: skip
        etag = s3_http.put(grant["url"], content=chunk, headers=grant["headers"]).headers["etag"]
        upload_parts.report_part(env.settings, env.store, user=env.other, dataset_id=other_ds, upload_id=other,
                            index=index, size_bytes=len(chunk), sha256=sha(chunk), etag=etag)  # fmt: skip
    upload_complete.complete(env.settings, env.store, user=env.other, dataset_id=other_ds, upload_id=other)
    assert list(env.store.list(blobs.BLOB_PREFIX)) == [blob]
    with session_scope(env.settings.database_url) as session:
        assert set(session.scalars(select(DatasetVersion.storage_key)).all()) == {blob}
        assert len(session.scalars(select(DatasetVersion.id)).all()) == 3
    env.assert_no_orphans()


def test_chunks_through_the_api_into_a_direct_session(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    # A client that does not know direct mode PUTs its chunks to the API: the platform sends them on as parts.
    env = s3_env
    data = csv_bytes(CHUNK + 4321, seed=6)
    chunks = split(data, CHUNK)
    dataset_id = env.dataset("direct-via-api")
    upload_id = open_direct(env, dataset_id, data)
    env.put(dataset_id, upload_id, 0, chunks[0])
    send(env, s3_http, dataset_id, upload_id, 1, chunks[1])
    version_id = complete(env, dataset_id, upload_id)
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).sha256 == hashlib.sha256(data).hexdigest()
    env.assert_no_orphans()


def test_unreadable_content_leaves_no_blob(s3_env: DataEnv, s3_http: httpx.Client) -> None:
    # The hash is right, so the blob copy starts while the content is checked; the check fails: the copy goes.
    env = s3_env
    data = b"\xff\xfe\x00\x01" * ((CHUNK + 4096) // 4)
    dataset_id = env.dataset("direct-unreadable")
    upload_id = open_direct(env, dataset_id, data, name="binary.csv")
    for index, chunk in enumerate(split(data, CHUNK)):
        send(env, s3_http, dataset_id, upload_id, index, chunk)
    expect(ErrorCode.INVALID_INPUT, "not UTF-8", complete, env, dataset_id, upload_id)
    assert status(env, upload_id) == "ABORTED"
    assert env.stored_keys() == set()
    with session_scope(env.settings.database_url) as session:
        assert session.scalars(select(DatasetVersion.id)).all() == []


def test_urls_name_the_public_endpoint_and_are_short_lived(s3_env: DataEnv, tmp_path: Path) -> None:
    # The platform reaches S3 by its internal address; clients get URLs for the public one.
    env = s3_env
    settings = env.settings.model_copy(
        update={"s3_public_endpoint": "https://uploads.example.com:9443", "upload_url_ttl_s": 120}
    )
    store = open_store(settings)
    data = csv_bytes(CHUNK + 10, seed=7)
    dataset_id = env.dataset("direct-public")
    upload_id = uploads.create_session(settings, store=store, user=env.owner, dataset_id=dataset_id,
                                       file_name="p.csv", size_bytes=len(data), sha256=sha(data),
                                       chunk_size=CHUNK)  # fmt: skip
    chunk = split(data, CHUNK)[0]
    grant = part_url(settings, store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id, index=0,
                     sha256=sha(chunk))  # fmt: skip
    query = parse_qs(urlsplit(grant["url"]).query)
    assert grant["url"].startswith("https://uploads.example.com:9443/")
    assert query["X-Amz-Expires"] == ["120"] and query["partNumber"] == ["1"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;host;x-amz-checksum-sha256"]
    assert grant["headers"] == {"x-amz-checksum-sha256": sha256_b64(sha(chunk)), "content-length": str(CHUNK)}
    assert grant["expires_at"] <= utcnow() + dt.timedelta(seconds=120)
    uploads.abort(settings, store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id)
    env.assert_no_orphans()
