"""Typed FastAPI dependencies: settings, store, a database session, the current user and permission checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings
from app.core.errors import AipError, ErrorCode
from app.core.permissions import check_known
from app.db.models import MAX_ID, User
from app.db.paging import DEFAULT_LIMIT, MAX_LIMIT, PageRequest
from app.db.session import session_scope
from app.services.identity import tokens
from app.storage import ObjectStore, open_store

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)

SettingsDep = Annotated[Settings, Depends(get_settings)]

_stores: dict[str, ObjectStore] = {}


def get_store(settings: SettingsDep) -> ObjectStore:
    # One client per storage URL and process: the S3 client keeps a connection pool.
    if settings.storage_url not in _stores:
        _stores[settings.storage_url] = open_store(settings)
    return _stores[settings.storage_url]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.database_url) as session:
        yield session


StoreDep = Annotated[ObjectStore, Depends(get_store)]
# Every id in a path: outside the database's integer range it is a 404 (see main's validation handler), not a 500.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="An id, as the platform returned it.")]
IndexPath = Annotated[int, Path(ge=0, le=MAX_ID, description="A chunk's index, from 0.")]
# "function" scope: the unit of work commits before the response is sent, so a client never sees a success
# whose commit then fails, and its next request sees what this one wrote.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def get_principal(
    request: Request, session: SessionDep, settings: SettingsDep, token: str | None = Depends(oauth2_scheme)
) -> tokens.Principal:
    if not token:
        raise AipError(ErrorCode.UNAUTHENTICATED, "Not logged in: send 'Authorization: Bearer <token>' from login.")
    principal = tokens.principal_for(session, settings, token)
    request.state.user_id = principal.user.id  # for the audit log
    request.state.username = principal.user.username
    return principal


PrincipalDep = Annotated[tokens.Principal, Depends(get_principal)]


def require(permission: str) -> Callable[..., User]:
    """A dependency that lets a request through only if the caller holds `permission` (e.g. `dataset:list`)
    and, with an API token, the token's scopes include it. Returns the user."""
    check_known(permission)

    def check(request: Request, principal: PrincipalDep) -> User:
        request.state.permission = permission
        if not principal.allows(permission):
            raise AipError(ErrorCode.FORBIDDEN, f"You lack the permission {permission!r}; ask an admin for it.")
        return principal.user

    check.permission = permission  # type: ignore[attr-defined]  # read by the route-coverage test
    return check


def page_request(
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page."),
    offset: int = Query(default=0, ge=0, le=MAX_ID, description="Items to skip."),
    sort: str | None = Query(
        default=None, max_length=64, pattern=r"^-?[a-z_]+$", description="A field to sort by; '-field': descending."
    ),
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset, sort=sort)


PageDep = Annotated[PageRequest, Depends(page_request)]
