"""Engines, one session scope that commits or rolls back, and schema upgrade through Alembic."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from app.core.errors import AipError, ErrorCode

_MIGRATIONS = Path(__file__).parent / "migrations"


# Connections per engine: the API runs sync routes on anyio's 40 worker threads and some requests hold two
# sessions at once (the caller's identity, then a unit of work of the service's own), so a pool smaller than the
# threads could leave every thread holding one connection and waiting for a second one.
_POOL = {"pool_size": 10, "max_overflow": 50, "pool_timeout": 10}
# How long a SQLite writer waits for the write lock before the request fails with 503. Writes are short (no write
# on read paths, audit and last-use writes in transactions of their own), so a wait is normally a few ms; the
# bound only matters when something holds the lock far too long.
SQLITE_BUSY_TIMEOUT_MS = 5000


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout_s}, **_POOL)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800, **_POOL)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI types vary by driver
    # WAL lets the API read while a training job's reporter writes; foreign keys are off by default in SQLite.
    # synchronous=NORMAL in WAL mode syncs at checkpoints rather than on every commit: the write lock is held for
    # microseconds instead of an fsync, and a crash of the process still loses no committed transaction.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


@lru_cache(maxsize=8)
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


def rows_changed(session: Session, statement: Executable) -> int:
    """Runs an UPDATE or DELETE and returns how many rows it changed: a conditional UPDATE claims a change this way
    (SQLite has no row locks), and a DELETE of nothing is told apart."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on any error, maps driver errors to AipError."""
    session = _session_factory(url)()
    try:
        yield session
        session.commit()
    except IntegrityError as e:
        session.rollback()
        raise AipError(ErrorCode.CONFLICT, conflict_message(e)) from e
    except OperationalError as e:
        session.rollback()
        if _is_data_error(e):
            raise AipError(ErrorCode.CONFLICT, conflict_message(e)) from e
        # The driver's text names the server and the failure, never the statement or the data.
        raise AipError(ErrorCode.UNAVAILABLE, f"Database unavailable: {e.orig}. Check AIP_DATABASE_URL.") from e
    except PoolTimeoutError as e:
        session.rollback()
        raise AipError(ErrorCode.UNAVAILABLE, "The server is busy (no free database connection); retry shortly.") from e
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_STATEMENT_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+[`\"]?(\w+)", re.IGNORECASE)


def conflict_message(error: DBAPIError) -> str:
    """The refused change in words: which kind of record and which rule, never the SQL, the values or the
    driver's text (they can name other users' rows)."""
    match = _STATEMENT_TABLE.match(error.statement or "")
    record = _record_name(match.group(1)) if match else "record"
    text = str(error.orig).lower()
    verb = (error.statement or "").lstrip()[:6].upper()
    if "unique" in text or "duplicate" in text:
        return f"A {record} with the same name or key already exists: choose another, or change the existing one."
    if "foreign key" in text:
        if verb == "DELETE":
            return f"This {record} is still used by other records: delete or change those first."
        return f"The {record} refers to something that does not exist (or was just deleted): check the ids given."
    if "null" in text or "default value" in text:  # MySQL 1364: a NOT NULL column left out
        return f"A required value of the {record} is missing."
    return f"The database refused the change to the {record}: a value is out of range or too long."


def _record_name(table: str) -> str:
    # Tables are plural snake case ("model_versions", "api_tokens"): "model version", "api token".
    words = table.lower().split("_")
    words[-1] = words[-1].removesuffix("s") if not words[-1].endswith("ss") else words[-1]
    return " ".join(words)


_MYSQL_UNAVAILABLE = {1040, 1044, 1045, 1049, 1053, 1205, 1213}


def _is_data_error(error: OperationalError) -> bool:
    # MySQL drivers report some constraint errors (e.g. 1364, a NOT NULL column without a value) as
    # OperationalError; server-side errors are numbered below 2000, client/connection errors from 2000 on.
    # Access, unknown database, too many connections, lock timeouts and deadlocks are outages, not bad data.
    args = getattr(error.orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    return code is not None and code < 2000 and code not in _MYSQL_UNAVAILABLE


def upgrade_schema(url: str) -> None:
    """Creates or upgrades the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "heads")  # "heads": a feature branch may add its own head before the next merge
