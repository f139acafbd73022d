from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.session import upgrade_schema
from tests.utils.databases import backend_params, clean_database, reset_engines


@pytest.fixture(params=backend_params())
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables at all) of each selected backend."""
    url = clean_database(request.param, tmp_path)
    yield url
    reset_engines(url)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database of each selected backend at the newest schema revision."""
    upgrade_schema(empty_db_url)
    return empty_db_url
