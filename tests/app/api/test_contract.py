"""The OpenAPI document tells the truth: schemathesis fuzzes every operation of an isolated control plane
(tests/utils/contract_app.py) as a developer and as an admin. No server errors, no status the document does not
list, no response that breaks its schema, none slower than 5 s; unknown routes and methods answer in the envelope."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.utils.contract_app import DEVELOPER, contract_app, start_session

__all__ = ["contract_app"]  # the fixture

EXAMPLES = 20  # per operation and user: about a minute for both users on 2 cores
SLOWEST_S = 5.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _schema(app: FastAPI, username: str) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    # Logs in again whenever an answer is 401: fuzzing logout or a password reset ends the login it used.
    @schema.auth()
    class Login:
        def get(self, case: Any, context: Any) -> str:
            return start_session(username)

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


@pytest.fixture(scope="module")
def developer_schema(contract_app: FastAPI) -> Any:
    return _schema(contract_app, DEVELOPER[0])


@pytest.fixture(scope="module")
def admin_schema(contract_app: FastAPI) -> Any:
    return _schema(contract_app, "admin")


def _check(case: Any) -> None:
    response = case.call_and_validate(checks=CHECKS)
    assert response.elapsed < SLOWEST_S, f"{case.method} {case.formatted_path} took {response.elapsed:.1f} s"


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _fuzz(schema: Any) -> list[str]:
    """Fuzzes every operation with valid and invalid data; returns one line per operation that failed."""
    failures = []
    for found in schema.get_all_operations():
        operation = found.ok()
        if operation.path.endswith("/logs/stream"):
            continue  # server-sent events that last while the job runs: test_logs_stream covers it
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                _check(case)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as e:  # every operation's failures, not only the first
                failures.append(f"{operation.label} ({mode.value}): {str(e).strip()[:2000]}")
    return failures


def test_api_as_developer(developer_schema: Any) -> None:
    failures = _fuzz(developer_schema)
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures)


def test_api_as_admin(admin_schema: Any) -> None:
    failures = _fuzz(admin_schema)
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures)
