"""First-start admin creation and password rules, against a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.errors import AipError
from app.core.security import verify_password
from app.db.session import session_scope, upgrade_schema
from app.services.identity import users


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path)
    upgrade_schema(settings.database_url)
    return settings


def test_generated_admin_password_is_returned_once_and_stored_nowhere(settings: Settings) -> None:
    with session_scope(settings.database_url) as s:
        password = users.ensure_admin(s, settings)
    assert password
    with session_scope(settings.database_url) as s:
        assert users.ensure_admin(s, settings) is None  # second start: nothing new to show
        admin = users.find_user(s, "admin")
        assert verify_password(password, admin.password_hash)
        assert {r.name for r in admin.roles} == {"admin"}
    for path in settings.data_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("aiplatform.db"):
            assert password not in path.read_text(errors="ignore")


@pytest.mark.parametrize(
    ("password", "problem"),
    [("short1", "at least"), ("onlyletterslong", "letters and digits"), ("alice-Passw0rd", "username")],
)
def test_password_rules(settings: Settings, password: str, problem: str) -> None:
    with session_scope(settings.database_url) as s, pytest.raises(AipError, match=problem):
        users.ensure_builtin_roles(s)
        users.create_user(s, settings, username="alice", password=password, roles=["viewer"])
