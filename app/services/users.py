"""Users and login. Roles and permissions plug in at `has_permission`."""

from __future__ import annotations

import os
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode
from app.core.security import create_access_token, decode_access_token, hash_password, verify_password
from app.db.models import User

ADMIN_PASSWORD_FILE = "admin_password"


def ensure_admin(session: Session, settings: Settings) -> None:
    """Creates the first admin on first start, with AIP_ADMIN_PASSWORD or a generated password kept in a
    private file of the data dir for `aiplatform up` to show."""
    if session.scalar(select(User).where(User.username == settings.admin_username)):
        return
    password = settings.admin_password or _generated_admin_password(settings)
    session.add(User(username=settings.admin_username, password_hash=hash_password(password), is_admin=True))
    session.flush()


def _generated_admin_password(settings: Settings) -> str:
    path = settings.data_dir / ADMIN_PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password)
    return password


def login(session: Session, settings: Settings, *, username: str, password: str) -> str:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not verify_password(password, user.password_hash):
        raise AipError(ErrorCode.UNAUTHENTICATED, "Wrong username or password.")
    if not user.is_active:
        raise AipError(ErrorCode.FORBIDDEN, "This account is disabled; ask an admin to enable it.")
    return create_access_token(
        subject=str(user.id), secret_key=settings.secret_key, minutes=settings.access_token_minutes
    )


def user_from_token(session: Session, settings: Settings, token: str) -> User:
    user_id = decode_access_token(token, secret_key=settings.secret_key)
    user = session.get(User, int(user_id))
    if user is None or not user.is_active:
        raise AipError(ErrorCode.UNAUTHENTICATED, "This account no longer exists or is disabled.")
    return user


def has_permission(user: User, permission: str) -> bool:
    """Every route names its permission (RuoYi style, e.g. `dataset:list`). Until roles exist, every active
    user holds every permission except the admin-only `system:*` ones."""
    return user.is_admin or not permission.startswith("system:")
