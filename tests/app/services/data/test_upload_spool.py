"""Chunks checked as they come through the API: the spool hashes and format-checks them in order, whatever order
they arrive in, and completion uses it instead of reading the file back; where it missed chunks, completion reads
back as before. Every spool goes with its session."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest

from app.core.errors import AipError
from app.db.models import DatasetVersion
from app.db.session import session_scope
from app.services.data import formats, upload_complete, upload_spool, uploads
from tests.app.services.data.test_uploads import CHUNK, csv_bytes, open_session
from tests.utils.data_env import DataEnv, sha, split


def test_a_spool_hashes_and_checks_chunks_in_order_whatever_order_they_arrive_in(tmp_path: Path) -> None:
    data = csv_bytes(2000)
    chunks = list(enumerate(split(data, CHUNK)))
    order = chunks + chunks[3:6]  # some sent twice
    random.Random(2).shuffle(order)
    with upload_spool.Spool("csv", len(data), CHUNK) as spool:
        for index, chunk in order:
            spool.add(index, chunk, sha(chunk))
        assert spool.fed == [sha(chunk) for _, chunk in chunks]
        assert spool.sha256() == sha(data)
        assert spool.path.read_bytes() == data
        copy = tmp_path / "data.csv"
        copy.write_bytes(data)
        assert spool.check.result(spool.path) == formats.inspect(copy, "csv")
        directory = spool.path.parent
    assert not directory.exists()


def test_completion_uses_the_spool_and_reads_nothing_back(fast_env: DataEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env = fast_env
    data = csv_bytes(3000)
    dataset_id = env.dataset("spooled")
    upload_id = open_session(env, dataset_id, data)
    chunks = list(enumerate(split(data, CHUNK)))
    random.Random(3).shuffle(chunks)
    for index, chunk in chunks:
        env.put(dataset_id, upload_id, index, chunk)
    assert upload_id in upload_spool.spooled()

    def no_read_back(*_: object) -> str:
        raise AssertionError("completion read the file back although its chunks were spooled")

    monkeypatch.setattr(upload_complete, "_read_back", no_read_back)
    version_id = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    with session_scope(env.settings.database_url) as session:
        version = session.get_one(DatasetVersion, version_id)
        assert (version.sha256, version.num_rows) == (sha(data), 3000)
        assert env.store.get_bytes(version.storage_key) == data
    assert upload_id not in upload_spool.spooled()
    env.assert_no_orphans()


def test_a_spool_that_missed_chunks_is_dropped_and_the_file_read_back(fast_env: DataEnv) -> None:
    env = fast_env
    data = csv_bytes(1500)
    dataset_id = env.dataset("half-spooled")
    upload_id = open_session(env, dataset_id, data)
    chunks = split(data, CHUNK)
    for index, chunk in enumerate(chunks[:-3]):
        env.put(dataset_id, upload_id, index, chunk)
    upload_spool.drop(upload_id)  # the API restarted: the rest start a new spool without the first chunks
    for index in range(len(chunks) - 3, len(chunks)):
        env.put(dataset_id, upload_id, index, chunks[index])
    assert upload_id in upload_spool.spooled()
    version_id = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).sha256 == sha(data)
    assert upload_id not in upload_spool.spooled()
    env.assert_no_orphans()


def test_spooled_bytes_that_are_wrong_fail_completion_and_leave_nothing(fast_env: DataEnv) -> None:
    env = fast_env
    data, bad = csv_bytes(800), b"a,b\n" + b"1,2,3\n" * 2000
    dataset_id = env.dataset("spooled-wrong")
    wrong_hash = open_session(env, dataset_id, data, sha256=sha(data + b"x"))
    unreadable = open_session(env, dataset_id, bad, name="bad.csv")
    for upload_id, content in ((wrong_hash, data), (unreadable, bad)):
        for index, chunk in enumerate(split(content, CHUNK)):
            env.put(dataset_id, upload_id, index, chunk)
    for upload_id, match in ((wrong_hash, "declared"), (unreadable, "not a readable CSV")):
        with pytest.raises(AipError, match=match):
            upload_complete.complete(
                env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
            )
        assert upload_id not in upload_spool.spooled()
    assert env.stored_keys() == set()
    env.assert_no_orphans()


def test_ended_and_idle_sessions_lose_their_spools(fast_env: DataEnv) -> None:
    env = fast_env
    dataset_id = env.dataset("spools-ended")
    data = csv_bytes(500)
    aborted, idle = (open_session(env, dataset_id, data, name=name) for name in ("a.csv", "i.csv"))
    for upload_id in (aborted, idle):
        env.put(dataset_id, upload_id, 0, split(data, CHUNK)[0])
    assert {aborted, idle} <= upload_spool.spooled()
    uploads.abort(env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=aborted)
    assert aborted not in upload_spool.spooled()
    upload_spool.drop_idle(0)
    assert idle not in upload_spool.spooled()
    env.assert_no_orphans()


def test_at_most_max_spools_are_kept_the_least_recently_used_going_first() -> None:
    ids = [f"lru-{n}" for n in range(upload_spool.MAX_SPOOLS + 1)]
    for upload_id in ids:
        upload_spool.receive(upload_id, fmt="csv", size=8, chunk_size=4, index=1, data=b"2\n3\n", sha256="x")
    try:
        held = upload_spool.spooled()
        assert ids[0] not in held and set(ids[1:]) <= held
    finally:
        for upload_id in ids:
            upload_spool.drop(upload_id)


def test_a_spool_that_cannot_be_written_refuses_no_chunk(
    fast_env: DataEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = fast_env
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # the API's temp dir is unusable
    data = csv_bytes(700)
    dataset_id = env.dataset("unspooled")
    upload_id = open_session(env, dataset_id, data)
    for index, chunk in enumerate(split(data, CHUNK)):
        env.put(dataset_id, upload_id, index, chunk)
    assert upload_id not in upload_spool.spooled()
    monkeypatch.undo()  # completion's own scratch file needs the temp dir
    version_id = upload_complete.complete(
        env.settings, env.store, user=env.owner, dataset_id=dataset_id, upload_id=upload_id
    )
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).sha256 == sha(data)
    env.assert_no_orphans()
