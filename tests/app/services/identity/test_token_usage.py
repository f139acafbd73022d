"""API tokens' last use: coalesced in memory, written by a background thread, at most once per interval per token
even across processes (each replica has its own recorder), against every selected database backend."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import event, select

from app.db.models import ApiToken, User, utcnow
from app.db.session import get_engine, session_scope
from app.services.identity import token_usage
from tests.utils.wait import wait_for


def _token(url: str, name: str = "t") -> int:
    with session_scope(url) as s:
        user = User(username=f"u-{name}", password_hash="x")
        s.add(user)
        s.flush()
        row = ApiToken(user_id=user.id, name=name, prefix="abcd", token_hash=f"h-{name}", scopes=["dataset:list"])
        s.add(row)
        s.flush()
        return row.id


@pytest.fixture
def token_updates(db_url: str) -> Iterator[list[str]]:
    """The name of the thread that ran each UPDATE of api_tokens on this database, in order."""
    threads: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            threads.append(threading.current_thread().name)

    engine = get_engine(db_url)
    event.listen(engine, "before_cursor_execute", seen)
    yield threads
    event.remove(engine, "before_cursor_execute", seen)


def _last_used(url: str, token_id: int) -> dt.datetime | None:
    with session_scope(url) as s:
        return s.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id))


def test_uses_within_the_interval_are_written_once(db_url: str, token_updates: list[str]) -> None:
    token_id = _token(db_url)
    recorder = token_usage.UsageRecorder(db_url)
    for _ in range(100):
        recorder.note(token_id, None)  # each request read a row that still says "never used"
    wait_for(lambda: _last_used(db_url, token_id), timeout_s=10, what="the writer thread to record the use")
    recorder.note(token_id, None)
    assert recorder.flush() == 0  # noted a moment ago: nothing queued
    assert token_updates == [token_usage.WRITER_THREAD_NAME]


def test_another_process_does_not_write_again_within_the_interval(db_url: str) -> None:
    token_id = _token(db_url)
    replica_a, replica_b = token_usage.UsageRecorder(db_url), token_usage.UsageRecorder(db_url)
    replica_a.note(token_id, None)
    wait_for(lambda: _last_used(db_url, token_id), timeout_s=10, what="the writer thread to record the use")
    written_by_a = _last_used(db_url, token_id)
    replica_b.note(token_id, None)  # a request on the other replica read the row before replica A wrote it
    replica_b.flush()
    assert _last_used(db_url, token_id) == written_by_a


def test_a_use_after_the_interval_is_written_again(db_url: str) -> None:
    token_id = _token(db_url)
    interval = dt.timedelta(seconds=1.2)  # over MariaDB's whole-second DATETIME
    recorder = token_usage.UsageRecorder(db_url, interval=interval)
    recorder.note(token_id, None)
    first = wait_for(lambda: _last_used(db_url, token_id), timeout_s=10, what="the first use recorded")
    recorder.note(token_id, first)  # within the interval: no write
    # MariaDB keeps whole seconds: the stored time may be up to 1 s before the use this process remembers.
    wait_for(lambda: utcnow() - first > interval + dt.timedelta(seconds=1), timeout_s=5, what="the interval to pass")
    recorder.note(token_id, first)
    wait_for(lambda: _last_used(db_url, token_id) != first, timeout_s=10, what="the later use recorded")


def test_many_threads_noting_many_tokens_write_each_once_from_the_writer(db_url: str, token_updates: list[str]) -> None:
    token_ids = [_token(db_url, f"t{i}") for i in range(5)]
    recorder = token_usage.UsageRecorder(db_url)
    noters = [threading.Thread(target=lambda: [recorder.note(t, None) for t in token_ids]) for _ in range(8)]
    for thread in noters:
        thread.start()
    for thread in noters:
        thread.join()
    wait_for(lambda: all(_last_used(db_url, t) for t in token_ids), timeout_s=10, what="every token's use recorded")
    assert recorder.flush() == 0
    assert token_updates == [token_usage.WRITER_THREAD_NAME] * len(token_ids)
