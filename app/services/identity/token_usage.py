"""API tokens' last use, recorded off the request path: at most one write per token per interval, made by one
background thread per process in a short transaction of its own.

Writing `api_tokens.last_used_at` inside each request's transaction made every API-token request a writer: on
SQLite they queued behind each other (and behind audit writes) on the one write lock, for up to the busy timeout.
Here a request only notes the use in memory and never waits; the writer's UPDATE is conditional on the stored
time being older than the interval, so several processes (replicas) also write a token at most once per interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import or_, update

from app.db.models import ApiToken, utcnow
from app.db.session import rows_changed, session_scope

log = logging.getLogger(__name__)

LAST_USED_INTERVAL = dt.timedelta(minutes=1)
WRITER_THREAD_NAME = "aip-token-usage"
_RETRY_S = 5.0  # after a failed write (database busy or down), try again this much later


class UsageRecorder:
    """Coalesces API-token uses into last-used writes for one database (one per process: `recorder_for`)."""

    def __init__(self, database_url: str, *, interval: dt.timedelta = LAST_USED_INTERVAL) -> None:
        self._url = database_url
        self._interval = interval
        self._lock = threading.Lock()
        self._noted: dict[int, dt.datetime] = {}  # token id -> the use last queued for writing
        self._pending: dict[int, dt.datetime] = {}  # token id -> the use to write
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, token_id: int, stored_last_used: dt.datetime | None) -> None:
        """Records a use of the token now; queues a write only if neither the stored time nor a use queued
        by this process is within the interval. Never touches the database."""
        now = utcnow()
        with self._lock:
            if stored_last_used is not None and now - stored_last_used < self._interval:
                return
            queued = self._noted.get(token_id)
            if queued is not None and now - queued < self._interval:
                return
            self._noted[token_id] = now
            self._pending[token_id] = now
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=WRITER_THREAD_NAME, daemon=True)
                self._thread.start()
        self._wake.set()

    def flush(self) -> int:
        """Writes the queued uses now, in one short transaction; returns how many tokens it updated."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            return self._write(batch)
        except Exception:
            with self._lock:  # keep them for the next try; a newer use of the same token wins
                self._pending = {**batch, **self._pending}
            raise

    def _write(self, batch: dict[int, dt.datetime]) -> int:
        written = 0
        with session_scope(self._url) as session:
            for token_id, used_at in sorted(batch.items()):  # one lock order, so two replicas cannot deadlock
                written += rows_changed(
                    session,
                    update(ApiToken)
                    .where(
                        ApiToken.id == token_id,
                        or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= used_at - self._interval),
                    )
                    .values(last_used_at=used_at),
                )
        return written

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the record is best-effort: a request already got its answer
                log.warning("Could not record API tokens' last use; retrying in %.0f s", _RETRY_S, exc_info=True)
                self._wake.wait(_RETRY_S)
                self._wake.set()
            self._forget_old()

    def _forget_old(self) -> None:
        cutoff = utcnow() - self._interval
        with self._lock:
            self._noted = {k: v for k, v in self._noted.items() if v > cutoff}


_recorders: dict[str, UsageRecorder] = {}
_recorders_lock = threading.Lock()


def recorder_for(database_url: str) -> UsageRecorder:
    with _recorders_lock:
        if database_url not in _recorders:
            _recorders[database_url] = UsageRecorder(database_url)
        return _recorders[database_url]
