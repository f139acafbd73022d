"""An isolated control-plane app for contract tests: its own data dir and SQLite database, and no Ray (work handed
to Ray is answered 503, which the OpenAPI document declares), so fuzzing it can delete or change nothing that other
tests use."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api.main import create_app
from app.core.config import get_settings
from app.db.models import User
from app.db.session import session_scope, upgrade_schema
from app.services.identity import tokens, users

ADMIN_PASSWORD = "contract-admin-password-1"
DEVELOPER = ("fuzzdev", "Contract-tester-pw-9")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def contract_env(data_dir: Path) -> dict[str, str]:
    """Settings of the isolated app; the Ray ports point at nothing, so a submission fails fast."""
    return {
        "AIP_DATA_DIR": str(data_dir),
        "AIP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AIP_RAY_DASHBOARD_PORT": str(free_port()),
        "AIP_RAY_PORT": str(free_port()),
    }


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The isolated app, for one test module (import this fixture into the module)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in contract_env(tmp_path_factory.mktemp("contract")).items():
            env.setenv(name, value)
        yield build_app()


def login(app: FastAPI, username: str, password: str) -> str:
    with TestClient(app) as client:
        answer = client.post("/api/v1/auth/login", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def start_session(username: str) -> str:
    """An access token as a login makes one, without the password check: a fuzzer's failed logins from the same
    address make the login limiter refuse the right password too."""
    settings = get_settings()
    with session_scope(settings.database_url) as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return tokens.start_session(session, settings, user=user, client_ip="contract-test").access_token


def build_app() -> FastAPI:
    """The app of the current environment's settings, with its schema, the admin and one developer."""
    settings = get_settings()
    upgrade_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        users.ensure_admin(session, settings)
        if session.scalar(select(User).where(User.username == DEVELOPER[0])) is None:
            users.create_user(session, settings, username=DEVELOPER[0], password=DEVELOPER[1], roles=["developer"])
    from ray.job_submission import JobSubmissionClient  # noqa: F401  # imported once here (~10 s), not in a request

    return create_app()


if __name__ == "__main__":  # serve it for a schemathesis CLI run: AIP_DATA_DIR=... python -m tests.utils.contract_app
    import uvicorn

    os.environ.setdefault("AIP_ADMIN_PASSWORD", ADMIN_PASSWORD)
    uvicorn.run(build_app(), host="127.0.0.1", port=int(os.environ.get("CONTRACT_PORT", "27950")))
