"""Logins (refresh token + short-lived access tokens) and personal API tokens, and turning a bearer token
into the user it speaks for."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, invalid, not_found
from app.core.permissions import ALL, check_known
from app.core.security import create_access_token, decode_access_token, hash_token
from app.db.models import ApiToken, AuthSession, User, utcnow
from app.db.paging import PageOf, PageRequest, page
from app.services.identity import token_usage
from app.services.system import sysconfig

API_TOKEN_PREFIX = "aip_"


@dataclass(frozen=True)
class Login:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for: the user, and the scopes of the API token used (None: a login)."""

    user: User
    scopes: frozenset[str] | None = None
    session_id: int | None = None

    def allows(self, permission: str) -> bool:
        held = self.user.permissions
        if ALL not in held and permission not in held:
            return False
        return self.scopes is None or permission in self.scopes or ALL in self.scopes


def start_session(session: Session, settings: Settings, *, user: User, client_ip: str) -> Login:
    refresh = secrets.token_urlsafe(32)
    days = sysconfig.get(session, settings, "auth.refresh_token_days")
    auth = AuthSession(
        user_id=user.id,
        refresh_hash=hash_token(refresh),
        client_ip=client_ip[:64],
        expires_at=utcnow() + dt.timedelta(days=days),
    )
    session.add(auth)
    session.flush()
    return _login(settings, user_id=user.id, session_id=auth.id, refresh=refresh)


def _login(settings: Settings, *, user_id: int, session_id: int, refresh: str) -> Login:
    access = create_access_token(
        user_id=user_id, session_id=session_id, secret_key=settings.secret_key, minutes=settings.access_token_minutes
    )
    return Login(access_token=access, refresh_token=refresh, expires_in=settings.access_token_minutes * 60)


def refresh_session(session: Session, settings: Settings, *, refresh_token: str) -> Login:
    """Trades a refresh token for a new access token and a new refresh token (the old one stops working)."""
    auth = session.scalar(select(AuthSession).where(AuthSession.refresh_hash == hash_token(refresh_token)))
    if auth is None or auth.revoked_at is not None or auth.expires_at <= utcnow():
        raise AipError(ErrorCode.UNAUTHENTICATED, "The refresh token is invalid, expired or revoked: log in again.")
    user = session.get(User, auth.user_id)
    if user is None or not user.is_active:
        raise AipError(ErrorCode.UNAUTHENTICATED, "This account no longer exists or is disabled.")
    refresh = secrets.token_urlsafe(32)
    auth.refresh_hash = hash_token(refresh)
    session.flush()
    return _login(settings, user_id=user.id, session_id=auth.id, refresh=refresh)


def revoke_session(session: Session, *, session_id: int) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_sessions(session: Session, *, user_id: int) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def create_api_token(
    session: Session, *, user: User, name: str, scopes: list[str], expires_days: int | None
) -> tuple[ApiToken, str]:
    """Returns the row and the token itself, which is shown this once and stored only as a hash."""
    for scope in scopes:
        try:
            check_known(scope)
        except ValueError as e:
            raise invalid(str(e)) from e
        if ALL not in user.permissions and scope not in user.permissions:
            raise invalid(f"You do not hold {scope!r}, so a token of yours cannot have it.")
    if not scopes:
        raise invalid("Give the token at least one scope (a permission such as 'dataset:list').")
    secret = secrets.token_urlsafe(32)
    prefix = secrets.token_hex(4)
    token = f"{API_TOKEN_PREFIX}{prefix}_{secret}"
    row = ApiToken(
        user_id=user.id,
        name=name,
        prefix=prefix,
        token_hash=hash_token(token),
        scopes=sorted(set(scopes)),
        expires_at=utcnow() + dt.timedelta(days=expires_days) if expires_days else None,
    )
    session.add(row)
    session.flush()
    return row, token


def list_api_tokens(session: Session, *, user: User, request: PageRequest = PageRequest()) -> PageOf[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id)
    sortable = {"id": ApiToken.id, "name": ApiToken.name, "created_at": ApiToken.created_at}
    return page(session, query, request, sortable=sortable, default_sort="id", tiebreak=ApiToken.id)


def revoke_api_token(session: Session, *, user: User, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise not_found("API token", token_id)
    row.revoked_at = row.revoked_at or utcnow()


def principal_for(session: Session, settings: Settings, token: str) -> Principal:
    """The user a bearer token speaks for; raises UNAUTHENTICATED for anything not currently valid."""
    if token.startswith(API_TOKEN_PREFIX):
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= utcnow()):
            raise AipError(ErrorCode.UNAUTHENTICATED, "The API token is invalid, expired or revoked.")
        # Noted, not written: the request's transaction stays read-only (see token_usage).
        token_usage.recorder_for(settings.database_url).note(row.id, row.last_used_at)
        return Principal(user=_active_user(session, row.user_id), scopes=frozenset(row.scopes))
    claims = decode_access_token(token, secret_key=settings.secret_key)
    auth = session.get(AuthSession, claims.session_id)
    if auth is None or auth.user_id != claims.user_id or auth.revoked_at is not None:
        raise AipError(ErrorCode.UNAUTHENTICATED, "This login has ended (logged out or password changed).")
    return Principal(user=_active_user(session, claims.user_id), session_id=auth.id)


def _active_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise AipError(ErrorCode.UNAUTHENTICATED, "This account no longer exists or is disabled.")
    return user
