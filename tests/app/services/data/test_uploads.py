"""Chunked uploads through the service layer on every database backend, with the local store and SeaweedFS S3:
out-of-order parallel chunks, resume, dedup, every bad input, abort/expiry/delete leaving no orphan object."""

from __future__ import annotations

import datetime as dt
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from app.core.errors import AipError, ErrorCode
from app.db.models import DatasetVersion, UploadSession, utcnow
from app.db.session import session_scope
from app.services.data import (
    blobs,
    datasets,
    formats,
    upload_complete,
    upload_parts,
    upload_spool,
    upload_storage,
    uploads,
)
from tests.utils.data_env import DataEnv, sha, split

CHUNK = 4096


def csv_bytes(rows: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = ["id,x,y,label"] + [f"{i},{rng.random():.6f},{rng.randint(0, 99)},{'ab'[i % 2]}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def open_session(env: DataEnv, dataset_id: int, data: bytes, name: str = "data.csv", **overrides: object) -> str:
    args = {"file_name": name, "size_bytes": len(data), "sha256": sha(data), "chunk_size": CHUNK, **overrides}
    args |= {"store": env.store, "mode": "api"}  # chunks through the API, as parts where S3 takes them
    return uploads.create_session(env.settings, user=env.owner, dataset_id=dataset_id, **args)  # type: ignore[arg-type]


def expect(code: ErrorCode, match: str, call, *args, **kwargs) -> AipError:  # noqa: ANN001
    with pytest.raises(AipError) as err:
        call(*args, **kwargs)
    assert err.value.code is code, err.value.message
    assert match.lower() in err.value.message.lower(), err.value.message
    return err.value


def version_count(env: DataEnv) -> int:
    with session_scope(env.settings.database_url) as session:
        return len(session.scalars(select(DatasetVersion.id)).all())


def test_parallel_out_of_order_chunks_compose_the_file(data_env: DataEnv) -> None:
    env = data_env
    data = csv_bytes(4000)  # ~100 KiB: 25 chunks, the last one short
    dataset_id = env.dataset("parallel")
    upload_id = open_session(env, dataset_id, data)
    chunks = list(enumerate(split(data, CHUNK)))
    assert len(chunks) > 10 and len(chunks[-1][1]) < CHUNK
    random.Random(1).shuffle(chunks)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: env.put(dataset_id, upload_id, *c), chunks))

    version_id = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    with session_scope(env.settings.database_url) as session:
        version = session.get_one(DatasetVersion, version_id)
        assert (version.sha256, version.size_bytes, version.num_rows) == (sha(data), len(data), 4000)
        assert [c["name"] for c in version.columns] == ["id", "x", "y", "label"]
        assert [c["dtype"] for c in version.columns] == ["int64", "float64", "int64", "object"]
        assert env.store.get_bytes(version.storage_key) == data
        assert session.get_one(UploadSession, upload_id).status == "COMPLETED"
    # Completing again answers the same version; the parts are gone.
    assert upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    ) == (version_id)
    assert list(env.store.list("uploads/")) == []
    env.assert_no_orphans()


def test_resume_sends_only_missing_chunks(fast_env: DataEnv) -> None:
    env = fast_env
    data = csv_bytes(600)
    dataset_id = env.dataset("resume")
    chunks = split(data, CHUNK)
    upload_id = open_session(env, dataset_id, data)
    for index in range(0, len(chunks), 2):  # the client dies after sending every other chunk
        env.put(dataset_id, upload_id, index, chunks[index])

    # The same declaration again finds the open session and says which chunks it has.
    assert open_session(env, dataset_id, data) == upload_id
    with session_scope(env.settings.database_url) as session:
        have = uploads.received(session, upload_id)
    assert have == list(range(0, len(chunks), 2))
    expect(ErrorCode.INVALID_INPUT, "lacks", upload_complete.complete, env.settings, env.store, user=env.owner,
           dataset_id=dataset_id, upload_id=upload_id)  # fmt: skip
    for index in sorted(set(range(len(chunks))) - set(have)):
        env.put(dataset_id, upload_id, index, chunks[index])
    env.put(dataset_id, upload_id, 0, chunks[0])  # a chunk sent twice is accepted once
    version_id = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).sha256 == sha(data)
    env.assert_no_orphans()


def test_identical_content_is_stored_once(data_env: DataEnv) -> None:
    env = data_env
    data = csv_bytes(300)
    first = env.upload(env.dataset("dedup-a"), "a.csv", data)
    second = env.upload(env.dataset("dedup-b"), "b.csv", data, chunk_size=8192)
    assert first != second
    stored = list(env.store.list(blobs.BLOB_PREFIX))
    assert stored == [blobs.blob_key(sha(data))]

    # The owner can read that content already: a new session needs no chunk at all.
    dataset_id = env.dataset("dedup-c")
    upload_id = open_session(env, dataset_id, data)
    with session_scope(env.settings.database_url) as session:
        upload = uploads.get_session(session, user=env.owner, upload_id=upload_id)
        assert uploads.known_content(session, user=env.owner, upload=upload) is not None
    third = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    assert third not in (first, second)

    # Another user cannot claim bytes by their hash: they must send every chunk (then the blob is shared).
    other_dataset = env.dataset("dedup-other", user=env.other)
    other_upload = uploads.create_session(
        env.settings, user=env.other, dataset_id=other_dataset, file_name="o.csv", size_bytes=len(data),
        sha256=sha(data), chunk_size=CHUNK,
    )  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "lacks", upload_complete.complete, env.settings, env.store, user=env.other,
           dataset_id=other_dataset, upload_id=other_upload)  # fmt: skip

    # Deleting one reference keeps the blob; deleting the last removes it.
    for version_id in (first, second):
        datasets.delete_version(env.settings, env.store, user=env.owner, version_id=version_id)
        assert list(env.store.list(blobs.BLOB_PREFIX)) == stored
    datasets.delete_version(env.settings, env.store, user=env.owner, version_id=third)
    assert list(env.store.list(blobs.BLOB_PREFIX)) == []
    env.assert_no_orphans()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"file_name": "../../etc/passwd.csv"}, "not allowed"),
        ({"file_name": "dir/data.csv"}, "not allowed"),
        ({"file_name": "..\\data.csv"}, "not allowed"),
        ({"file_name": ".hidden.csv"}, "not allowed"),
        ({"file_name": "data.exe"}, "Unsupported file type"),
        ({"sha256": "abc"}, "sha256"),
        ({"chunk_size": 10}, "chunk_size"),
        ({"chunk_size": 10**12}, "chunk_size"),
        ({"size_bytes": 0}, "empty"),
        ({"size_bytes": 10**9, "chunk_size": 64 << 20}, "upload.max_file_bytes"),
        ({"size_bytes": 10**7 * 5, "chunk_size": 1024}, "too many"),
    ],
)
def test_bad_session_declarations(fast_env: DataEnv, change: dict, match: str) -> None:
    env = fast_env
    env.settings.max_upload_bytes = 10**8
    dataset_id = env.dataset("bad-declarations")
    expect(ErrorCode.INVALID_INPUT, match, open_session, env, dataset_id, b"a,b\n1,2\n", **change)
    with session_scope(env.settings.database_url) as session:
        assert session.scalars(select(UploadSession)).all() == []


def test_quota_counts_versions_and_open_uploads(fast_env: DataEnv) -> None:
    env = fast_env
    data = csv_bytes(100)
    env.settings.user_quota_bytes = 2 * len(data) + 10
    dataset_id = env.dataset("quota")
    env.upload(dataset_id, "one.csv", data)
    open_session(env, dataset_id, csv_bytes(100, seed=1))  # declared, not yet sent: counts too
    expect(ErrorCode.INVALID_INPUT, "quota", open_session, env, dataset_id, csv_bytes(100, seed=2))
    # The other user's quota is their own.
    other = env.dataset("quota-other", user=env.other)
    uploads.create_session(env.settings, user=env.other, dataset_id=other, file_name="x.csv",
                           size_bytes=len(data), sha256=sha(data), chunk_size=CHUNK)  # fmt: skip


def test_bad_chunks_are_refused_and_store_nothing(data_env: DataEnv) -> None:
    env = data_env
    data = csv_bytes(300)
    dataset_id = env.dataset("bad-chunks")
    upload_id = open_session(env, dataset_id, data)
    chunks = split(data, CHUNK)
    put = upload_parts.put_chunk
    common = {"user": env.owner, "dataset_id": dataset_id, "upload_id": upload_id}
    expect(ErrorCode.INVALID_INPUT, "does not match its checksum", put, env.settings, env.store, index=0,
           data=chunks[0], sha256=sha(b"other"), **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "out of range", put, env.settings, env.store, index=len(chunks),
           data=chunks[0], sha256=sha(chunks[0]), **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "out of range", put, env.settings, env.store, index=-1,
           data=chunks[0], sha256=sha(chunks[0]), **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "must have", put, env.settings, env.store, index=0,
           data=chunks[0][:-1], sha256=sha(chunks[0][:-1]), **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "must have", put, env.settings, env.store, index=len(chunks) - 1,
           data=chunks[0], sha256=sha(chunks[0]), **common)  # fmt: skip
    expect(ErrorCode.INVALID_INPUT, "sha256", put, env.settings, env.store, index=0, data=chunks[0],
           sha256="not-hex", **common)  # fmt: skip
    expect(ErrorCode.NOT_FOUND, "Upload session", put, env.settings, env.store, index=0, data=chunks[0],
           sha256=sha(chunks[0]), user=env.other, dataset_id=dataset_id, upload_id=upload_id)  # fmt: skip
    expect(ErrorCode.NOT_FOUND, "Upload session", put, env.settings, env.store, index=0, data=chunks[0],
           sha256=sha(chunks[0]), user=env.owner, dataset_id=dataset_id + 1, upload_id=upload_id)  # fmt: skip
    assert list(env.store.list("uploads/")) == []
    env.assert_no_orphans()


def test_hash_mismatch_at_completion_aborts_and_leaves_nothing(data_env: DataEnv) -> None:
    env = data_env
    data = csv_bytes(300)
    dataset_id = env.dataset("hash-mismatch")
    claimed = sha(data + b"x")
    upload_id = open_session(env, dataset_id, data, sha256=claimed)
    for index, chunk in enumerate(split(data, CHUNK)):
        env.put(dataset_id, upload_id, index, chunk)
    err = expect(ErrorCode.INVALID_INPUT, "declared", upload_complete.complete, env.settings, env.store, user=env.owner,
                 dataset_id=dataset_id, upload_id=upload_id)  # fmt: skip
    assert sha(data) in err.message and claimed in err.message
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(UploadSession, upload_id).status == "ABORTED"
    assert version_count(env) == 0
    assert env.stored_keys() == set()
    # The ended session takes no more chunks.
    expect(ErrorCode.CONFLICT, "ABORTED", env.put, dataset_id, upload_id, 0, split(data, CHUNK)[0])
    assert env.stored_keys() == set()


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("binary.csv", b"\xff\xfe\x00\x01" * 2000, "not UTF-8"),
        ("header-only.csv", b"a,b\n" * 1, "no rows"),
        ("broken.parquet", b"PAR1" + b"\x00" * 5000, "not readable parquet"),
        ("bad.zip", b"PK" + b"\x01" * 3000, "not a readable zip"),
        ("lines.jsonl", b'{"a": 1}\n{"a": \n', "not a readable"),
    ],
)
def test_unreadable_content_creates_no_version(fast_env: DataEnv, name: str, content: bytes, match: str) -> None:
    env = fast_env
    dataset_id = env.dataset("unreadable")
    expect(ErrorCode.INVALID_INPUT, match, env.upload, dataset_id, name, content)
    assert version_count(env) == 0
    assert env.stored_keys() == set()


def test_abort_expiry_and_deletes_leave_no_orphans(data_env: DataEnv) -> None:
    env = data_env
    kept = env.dataset("kept")
    doomed = env.dataset("doomed")
    data = [csv_bytes(400, seed=i) for i in range(4)]  # 3-4 chunks each
    env.upload(kept, "k0.csv", data[0])
    doomed_version = env.upload(doomed, "d0.csv", data[1])
    env.upload(doomed, "shared.csv", data[0])  # same bytes as a kept version

    aborted = open_session(env, kept, data[2], name="aborted.csv")
    env.put(kept, aborted, 0, split(data[2], CHUNK)[0])
    stale = open_session(env, kept, data[3], name="stale.csv")
    env.put(kept, stale, 1, split(data[3], CHUNK)[1])
    in_doomed = open_session(env, doomed, data[3], name="open.csv")
    env.put(doomed, in_doomed, 0, split(data[3], CHUNK)[0])
    env.assert_no_orphans()

    uploads.abort(env.settings, env.store, user=env.owner, dataset_id=kept, upload_id=aborted)
    expect(ErrorCode.CONFLICT, "ABORTED", env.put, kept, aborted, 1, split(data[2], CHUNK)[1])
    env.assert_no_orphans()

    # Nothing is stale yet; an hour past the TTL, the idle session is.
    assert uploads.expire_stale(env.settings, env.store) == []
    later = utcnow() + dt.timedelta(seconds=env.settings.upload_session_ttl_s + 3600)
    with session_scope(env.settings.database_url) as session:  # keep the other session fresh
        session.get_one(UploadSession, in_doomed).updated_at = later
    assert uploads.expire_stale(env.settings, env.store, now=later) == [stale]
    env.assert_no_orphans()

    expect(ErrorCode.NOT_FOUND, "Dataset", datasets.delete_dataset, env.settings, env.store, user=env.other,
           dataset_id=doomed)  # fmt: skip
    datasets.delete_dataset(env.settings, env.store, user=env.owner, dataset_id=doomed)
    env.assert_no_orphans()
    assert env.store.exists(blobs.blob_key(sha(data[0])))  # still used by the kept dataset
    assert not env.store.exists(blobs.blob_key(sha(data[1])))
    with session_scope(env.settings.database_url) as session:
        assert session.get(DatasetVersion, doomed_version) is None
        assert session.get(UploadSession, in_doomed) is None
        statuses = dict(session.execute(select(UploadSession.id, UploadSession.status)).all())
    assert statuses[aborted] == "ABORTED" and statuses[stale] == "EXPIRED"


def test_concurrent_completions_make_one_version(data_env: DataEnv) -> None:
    env = data_env
    data = csv_bytes(3000)
    dataset_id = env.dataset("race")
    upload_id = open_session(env, dataset_id, data)
    for index, chunk in enumerate(split(data, CHUNK)):
        env.put(dataset_id, upload_id, index, chunk)

    def complete() -> int | str:
        try:
            return upload_complete.complete(
                env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
            )
        except AipError as e:
            assert e.code is ErrorCode.CONFLICT, e.message
            return "conflict"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: complete(), range(4)))
    ids = {r for r in results if r != "conflict"}
    assert len(ids) == 1 and version_count(env) == 1
    env.assert_no_orphans()


@pytest.mark.parametrize("chunk_size", [CHUNK, 5 << 20])  # 5 MiB: on S3, a multipart upload joined at completion
def test_a_session_expired_while_completing_records_no_version(
    data_env: DataEnv, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    env = data_env
    line = b"1.000000001,2.000000002,3.000000003,alpha\n"
    data = b"a,b,c,d\n" + line * ((chunk_size + 1000) // len(line))
    dataset_id = env.dataset("expired-while-completing")
    upload_id = open_session(env, dataset_id, data, chunk_size=chunk_size)
    for index, chunk in enumerate(split(data, chunk_size)):
        env.put(dataset_id, upload_id, index, chunk)
    verify = upload_complete._verify

    def expire_then_verify(*args: object) -> None:  # the reconcile loop's sweep, between read-back and recording
        later = utcnow() + dt.timedelta(seconds=env.settings.upload_session_ttl_s + 60)
        assert uploads.expire_stale(env.settings, env.store, now=later) == [upload_id]
        verify(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(upload_complete, "_verify", expire_then_verify)
    expect(ErrorCode.CONFLICT, "was EXPIRED (Idle for more than", upload_complete.complete, env.settings, env.store,
           user=env.owner, dataset_id=dataset_id, upload_id=upload_id)  # fmt: skip
    assert version_count(env) == 0
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(UploadSession, upload_id).status == "EXPIRED"
    env.assert_no_orphans()


def test_a_long_completion_is_not_expired_while_it_reads_back(
    fast_env: DataEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fast_env
    # Touched after each 0.8 s block meanwhile; a TTL of three such beats leaves room for a loaded machine's stalls
    # (the join before the read-back, a slow write), which a 1 s TTL did not.
    settings = env.settings.model_copy(update={"upload_session_ttl_s": 2.5})
    data = csv_bytes(1500)  # 10 chunks
    dataset_id = env.dataset("long-completion")
    upload_id = open_session(env, dataset_id, data)
    for index, chunk in enumerate(split(data, CHUNK)):
        env.put(dataset_id, upload_id, index, chunk)
    upload_spool.drop(upload_id)  # as if another replica had received the chunks: completion reads them back
    feed = formats.StreamCheck.feed

    def slow_feed(self: formats.StreamCheck, block: bytes) -> None:  # a large file's read-back, in short
        time.sleep(0.8)
        feed(self, block)

    monkeypatch.setattr(formats.StreamCheck, "feed", slow_feed)
    expired: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(upload_complete.complete, settings, env.store, user=env.owner, dataset_id=dataset_id,
                           upload_id=upload_id)  # fmt: skip
        while not done.done():  # the reconcile loop's sweep, as often as it likes
            expired += uploads.expire_stale(settings, env.store)
            time.sleep(0.1)
        version_id = done.result()  # an expired session would have ended it with a 409
    assert expired == []
    assert len(split(data, CHUNK)) * 0.8 > 2 * settings.upload_session_ttl_s  # the read-back outlived the TTL
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).sha256 == sha(data)
    env.assert_no_orphans()


def test_a_part_lost_by_storage_is_asked_for_again(fast_env: DataEnv) -> None:
    env = fast_env
    data = csv_bytes(600)
    dataset_id = env.dataset("lost-part")
    upload_id = open_session(env, dataset_id, data)
    chunks = split(data, CHUNK)
    for index, chunk in enumerate(chunks):
        env.put(dataset_id, upload_id, index, chunk)
    upload_spool.drop(upload_id)  # as after a restart of the API: completion reads the parts back
    env.store.delete(upload_storage.part_key(upload_id, 2))
    expect(ErrorCode.CONFLICT, "Chunk 2", upload_complete.complete, env.settings, env.store, user=env.owner,
           dataset_id=dataset_id, upload_id=upload_id)  # fmt: skip
    with session_scope(env.settings.database_url) as session:
        assert 2 not in uploads.received(session, upload_id)
        assert session.get_one(UploadSession, upload_id).status == "OPEN"
    env.put(dataset_id, upload_id, 2, chunks[2])
    version_id = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).sha256 == sha(data)
    env.assert_no_orphans()


def test_chunks_of_s3_part_size_become_multipart_parts(fast_env: DataEnv) -> None:
    # 5 MiB chunks: on S3 the platform sends each on as a part of a multipart upload at the upload's own blob key
    # (no part objects, nothing to compose); elsewhere they are stored as objects and concatenated.
    env = fast_env
    on_s3 = env.store.url.startswith("s3://")
    line = b"1.000000001,2.000000002,3.000000003,alpha\n"
    data = b"a,b,c,d\n" + line * ((11 << 20) // len(line))
    chunks = split(data, 5 << 20)
    dataset_id = env.dataset("big-chunks")
    upload_id = open_session(env, dataset_id, data, chunk_size=5 << 20)
    with session_scope(env.settings.database_url) as session:
        assert (session.get_one(UploadSession, upload_id).multipart_id is not None) == on_s3
    env.put(dataset_id, upload_id, 1, chunks[1])
    env.put(dataset_id, upload_id, 1, chunks[1])  # sent again: counts once
    env.assert_no_orphans()
    assert (list(env.store.list("uploads/")) == []) == on_s3  # parts as objects only off S3
    for index in (0, 2):
        env.put(dataset_id, upload_id, index, chunks[index])
    version_id = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    with session_scope(env.settings.database_url) as session:
        version = session.get_one(DatasetVersion, version_id)
        assert (version.num_rows, version.sha256) == (data.count(b"\n") - 1, sha(data))
        assert env.store.get_bytes(version.storage_key) == data
        blob = version.storage_key
    assert blob == (blobs.blob_key(sha(data), upload_id) if on_s3 else blobs.blob_key(sha(data)))
    env.assert_no_orphans()

    # Aborted or expired halfway: the multipart upload goes with its parts.
    other = data.replace(b"alpha", b"gamma")
    aborted, stale = (open_session(env, dataset_id, other, name=n, chunk_size=5 << 20) for n in ("a.csv", "s.csv"))
    for upload_id in (aborted, stale):
        env.put(dataset_id, upload_id, 0, split(other, 5 << 20)[0])
    env.assert_no_orphans()
    uploads.abort(env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=aborted)
    later = utcnow() + dt.timedelta(seconds=env.settings.upload_session_ttl_s + 60)
    assert uploads.expire_stale(env.settings, env.store, now=later) == [stale]
    assert env.stored_keys() == {blob}
    env.assert_no_orphans()


def test_multipart_join_keeps_only_verified_readable_bytes(fast_env: DataEnv) -> None:
    # On S3 the 5 MiB parts are joined under the upload's own blob key and read back from there: a wrong hash or an
    # unreadable file removes that object; identical content later shares the first upload's blob.
    env = fast_env
    line = b"1.5,2.5,beta\n"
    data = b"a,b,c\n" + line * ((11 << 20) // len(line))
    bad = b"a,b\n" + b"1,2,3\n" * ((11 << 20) // 6)
    dataset_id = env.dataset("own-blob")
    big = {"chunk_size": 5 << 20}

    def send_all(upload_id: str, content: bytes) -> None:
        for index, chunk in enumerate(split(content, 5 << 20)):
            env.put(dataset_id, upload_id, index, chunk)

    complete = upload_complete.complete
    wrong = open_session(env, dataset_id, data, sha256=sha(data + b"x"), **big)
    send_all(wrong, data)
    expect(ErrorCode.INVALID_INPUT, "declared", complete, env.settings, env.store, user=env.owner,
           dataset_id=dataset_id, upload_id=wrong)  # fmt: skip
    unreadable = open_session(env, dataset_id, bad, **big)
    send_all(unreadable, bad)
    expect(ErrorCode.INVALID_INPUT, "not a readable CSV", complete, env.settings, env.store, user=env.owner,
           dataset_id=dataset_id, upload_id=unreadable)  # fmt: skip
    assert env.stored_keys() == set() and version_count(env) == 0

    first_upload = open_session(env, dataset_id, data, **big)
    send_all(first_upload, data)
    first = complete(env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=first_upload)
    second = env.upload(env.dataset("own-blob-again"), "again.csv", data, chunk_size=5 << 20)
    with session_scope(env.settings.database_url) as session:
        keys = {session.get_one(DatasetVersion, v).storage_key for v in (first, second)}
    composed = blobs.blob_key(sha(data), first_upload) if env.store.url.startswith("s3://") else None
    assert keys == {composed or blobs.blob_key(sha(data))}
    assert list(env.store.list(blobs.BLOB_PREFIX)) == list(keys)
    env.assert_no_orphans()
