"""The database backends the DB-layer tests run against, each with a clean schema per test.

AIP_TEST_DATABASES picks the backends (comma list, default all three). SQLite uses a file in the test's tmp dir;
PostgreSQL and MySQL/MariaDB use the servers on this machine (URLs overridable with AIP_TEST_POSTGRESQL_URL and
AIP_TEST_MYSQL_URL). An unreachable server skips its tests with the reason, or fails them when CI=true.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine
from sqlalchemy.pool import NullPool

from app.db import session as db_session

BACKENDS = ("sqlite", "postgresql", "mysql")
SERVER_URLS = {
    "postgresql": os.environ.get("AIP_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("AIP_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
_CONNECT_TIMEOUT_ARGS = {"postgresql": {"connect_timeout": 5}, "mysql": {"connect_timeout": 5}}


def selected_backends() -> list[str]:
    names = [n.strip() for n in os.environ.get("AIP_TEST_DATABASES", ",".join(BACKENDS)).split(",") if n.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise ValueError(f"AIP_TEST_DATABASES has unknown backends {unknown}; use some of {', '.join(BACKENDS)}.")
    return names


def backend_params() -> list[Any]:
    """For `@pytest.fixture(params=...)`: one test id per selected backend."""
    return [pytest.param(name, id=name) for name in selected_backends()]


@cache
def unreachable_reason(backend: str) -> str | None:
    """None when the backend's server answers, else why not (checked once per test session)."""
    if backend == "sqlite":
        return None
    url = SERVER_URLS[backend]
    engine = create_engine(url, poolclass=NullPool, connect_args=_CONNECT_TIMEOUT_ARGS[backend])
    try:
        with engine.connect():
            return None
    except Exception as e:  # noqa: BLE001 - missing driver, refused connection, bad credentials, ...
        return f"{backend} at {engine.url.render_as_string(hide_password=True)} is unreachable: {e}"
    finally:
        engine.dispose()


def require_backend(backend: str) -> None:
    """Skips the calling test when the backend's server is unreachable; fails it instead under CI=true."""
    reason = unreachable_reason(backend)
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing database server fails the run)")
    pytest.skip(reason)


def database_url(backend: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'aip-test.db'}" if backend == "sqlite" else SERVER_URLS[backend]


def reset_engines(url: str) -> None:
    """Closes the pooled connections app.db.session cached for `url` and forgets every cached engine/session."""
    db_session.get_engine(url).dispose()
    db_session.get_engine.cache_clear()
    db_session._session_factory.cache_clear()


def drop_all_tables(url: str) -> None:
    """Drops every table in the database, alembic_version included, in foreign-key order."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            metadata = MetaData()
            metadata.reflect(conn)
            metadata.drop_all(conn)
    finally:
        engine.dispose()


def clean_database(backend: str, tmp_path: Path) -> str:
    """A URL of an empty database of `backend` (skips/fails when unreachable), with no stale cached engines."""
    require_backend(backend)
    url = database_url(backend, tmp_path)
    reset_engines(url)
    drop_all_tables(url)
    return url
