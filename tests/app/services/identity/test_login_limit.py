"""Failed-login throttling per account and address, kept in the database: on every selected backend, with two
`Settings` objects standing for two API replicas that share the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode
from app.db.session import session_scope
from app.services.identity import users
from app.services.system import sysconfig

PASSWORD = "Corr3ct-horse-battery"
ATTACKER, HOME, OFFICE = "203.0.113.7", "198.51.100.1", "198.51.100.2"


@pytest.fixture
def replicas(db_url: str, tmp_path: Path) -> tuple[Settings, Settings]:
    """Two API replicas over one database (own data dirs, so nothing but the database is shared)."""
    one = Settings(data_dir=tmp_path / "one", database_url=db_url)
    two = Settings(data_dir=tmp_path / "two", database_url=db_url)
    with session_scope(db_url) as s:
        users.ensure_builtin_roles(s)
        admin = users.create_user(s, one, username="root-admin", password=PASSWORD, roles=["admin"])
        users.create_user(s, one, username="alice", password=PASSWORD, roles=["viewer"])
        sysconfig.put(s, one, key="auth.max_failed_logins", value=3, user=admin)
        sysconfig.put(s, one, key="auth.max_failed_logins_per_address", value=6, user=admin)
    return one, two


def login(settings: Settings, username: str, password: str, ip: str) -> AipError | None:
    """None when the login succeeds, else the refusal."""
    try:
        with session_scope(settings.database_url) as s:
            users.authenticate(s, settings, username=username, password=password, client_ip=ip)
    except AipError as e:
        return e
    return None


def test_guessing_from_one_address_does_not_lock_out_the_user_elsewhere(replicas: tuple[Settings, Settings]) -> None:
    one, two = replicas
    assert login(one, "alice", PASSWORD, HOME) is None  # alice's usual address
    for replica in (one, two, one):  # the failures add up across replicas
        assert login(replica, "alice", "guess-1234x", ATTACKER).code is ErrorCode.UNAUTHENTICATED
    # The attacker's address now waits, even with the right password, on any replica.
    refused = login(two, "alice", PASSWORD, ATTACKER)
    assert refused is not None and refused.code is ErrorCode.UNAUTHENTICATED
    # Alice, from her own addresses, is not affected.
    assert login(two, "alice", PASSWORD, HOME) is None
    assert login(one, "alice", PASSWORD, OFFICE) is None


def test_unknown_wrong_and_waiting_get_the_same_answer(replicas: tuple[Settings, Settings]) -> None:
    one, _ = replicas
    unknown = login(one, "nobody-here", "guess-1234x", ATTACKER)
    wrong = login(one, "alice", "guess-1234x", ATTACKER)
    for _ in range(3):
        login(one, "alice", "guess-1234x", ATTACKER)
    waiting = login(one, "alice", PASSWORD, ATTACKER)
    answers = {(e.code, e.http_status, e.message) for e in (unknown, wrong, waiting) if e is not None}
    assert len(answers) == 1, answers
    assert answers.pop()[1] == 401


def test_admin_unlock_ends_the_wait(replicas: tuple[Settings, Settings]) -> None:
    one, two = replicas
    for _ in range(3):
        login(one, "alice", "guess-1234x", ATTACKER)
    assert login(one, "alice", PASSWORD, ATTACKER) is not None
    with session_scope(one.database_url) as s:
        locked = users.find_user(s, "alice")
        assert locked.locked_until is not None  # shown to admins in the user list
        assert users.unlock(s, user_id=locked.id).locked_until is None
    assert login(two, "alice", PASSWORD, ATTACKER) is None


def test_spraying_from_one_address_spares_users_known_there(replicas: tuple[Settings, Settings]) -> None:
    one, _ = replicas
    assert login(one, "alice", PASSWORD, ATTACKER) is None  # alice has logged in from this (shared) address
    with session_scope(one.database_url) as s:
        users.create_user(s, one, username="bob", password=PASSWORD, roles=["viewer"])
    for n in range(6):  # one guess each for six usernames: no single pair reaches its limit
        login(one, f"user{n}", "guess-1234x", ATTACKER)
    # The address is now throttled for usernames never seen there, but not for alice.
    assert login(one, "bob", PASSWORD, ATTACKER) is not None
    assert login(one, "alice", PASSWORD, ATTACKER) is None
    assert login(one, "bob", PASSWORD, HOME) is None
