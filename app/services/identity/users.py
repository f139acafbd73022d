"""Users, built-in roles, password rules, and login with lockout."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, invalid, not_found
from app.core.permissions import ALL, BUILTIN_ROLES
from app.core.security import hash_password, verify_password
from app.db.models import Role, User, utcnow
from app.services.identity import tokens
from app.services.system import sysconfig

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{1,63}$")
ADMIN_ROLE = "admin"


def ensure_builtin_roles(session: Session) -> None:
    """Creates the built-in roles and keeps their permissions in step with the catalog."""
    for name, permissions in BUILTIN_ROLES.items():
        role = session.scalar(select(Role).where(Role.name == name))
        if role is None:
            session.add(Role(name=name, description=f"Built-in {name} role", builtin=True, permissions=permissions))
        elif role.permissions != permissions:
            role.permissions = permissions
    session.flush()


def ensure_admin(session: Session, settings: Settings) -> str | None:
    """Creates the roles and, on first start, the first admin with AIP_ADMIN_PASSWORD or a generated password.

    Returns the generated password, which exists nowhere else: the caller shows it once.
    """
    ensure_builtin_roles(session)
    if session.scalar(select(User).where(User.username == settings.admin_username)):
        return None
    password = settings.admin_password or secrets.token_urlsafe(12)
    admin = User(username=settings.admin_username, password_hash=hash_password(password))
    admin.roles = [_role(session, ADMIN_ROLE)]
    session.add(admin)
    session.flush()
    return None if settings.admin_password else password


def keep_admin_password(settings: Settings, password: str) -> Path:
    """For a platform started without a terminal (e.g. a RayService), the generated admin password goes to a
    file only its owner can read; delete it after the first login and password change."""
    path = settings.admin_password_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password)
    return path


def _role(session: Session, name: str) -> Role:
    role = session.scalar(select(Role).where(Role.name == name))
    if role is None:
        known = ", ".join(session.scalars(select(Role.name).order_by(Role.name)))
        raise invalid(f"Unknown role {name!r}; roles are: {known}.")
    return role


def check_password(session: Session, settings: Settings, password: str, *, username: str = "") -> None:
    min_length = sysconfig.get(session, settings, "auth.password_min_length")
    problems = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    if sysconfig.get(session, settings, "auth.password_require_mixed") and not (
        re.search(r"[A-Za-z]", password) and re.search(r"\d", password)
    ):
        problems.append("both letters and digits")
    if username and username.lower() in password.lower():
        problems.append("not containing the username")
    if len(password) > 256:
        problems.append("at most 256 characters")
    if problems:
        raise invalid(f"Weak password: use {', '.join(problems)}.")


def create_user(session: Session, settings: Settings, *, username: str, password: str, roles: list[str]) -> User:
    if not USERNAME.match(username):
        raise invalid("Usernames are 2-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    if session.scalar(select(User).where(User.username == username)):
        raise conflict(f"User {username!r} already exists.")
    check_password(session, settings, password, username=username)
    user = User(username=username, password_hash=hash_password(password), password_changed_at=utcnow())
    user.roles = [_role(session, name) for name in dict.fromkeys(roles)]
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise not_found("User", user_id)
    return user


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise not_found("User", repr(username))
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def update_user(
    session: Session,
    *,
    actor: User,
    user_id: int,
    roles: list[str] | None = None,
    is_active: bool | None = None,
    unlock: bool = False,
) -> User:
    user = get_user(session, user_id)
    if roles is not None:
        new_roles = [_role(session, name) for name in dict.fromkeys(roles)]
        if user.id == actor.id and ALL in user.permissions and not any(ALL in r.permissions for r in new_roles):
            raise conflict("You cannot take the admin role from yourself; ask another admin.")
        user.roles = new_roles
    if is_active is not None:
        if user.id == actor.id and not is_active:
            raise conflict("You cannot disable your own account.")
        user.is_active = is_active
    if unlock:
        user.failed_logins = 0
        user.locked_until = None
    session.flush()
    return user


def set_password(session: Session, settings: Settings, *, user: User, password: str) -> None:
    """Sets a new password and ends the user's logins (their refresh tokens), so old sessions cannot go on."""
    check_password(session, settings, password, username=user.username)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    tokens.revoke_sessions(session, user_id=user.id)


def reset_password(session: Session, settings: Settings, *, user_id: int, password: str) -> None:
    """An admin sets another user's password."""
    set_password(session, settings, user=get_user(session, user_id), password=password)


def change_own_password(session: Session, settings: Settings, *, user: User, current: str, new: str) -> None:
    if not verify_password(current, user.password_hash):
        raise invalid("The current password is wrong.")
    if current == new:
        raise invalid("The new password must differ from the current one.")
    set_password(session, settings, user=user, password=new)


def authenticate(session: Session, settings: Settings, *, username: str, password: str) -> User:
    """Checks a password login; locks the account after too many failures in a row."""
    user = session.scalar(select(User).where(User.username == username))
    now = utcnow()
    if user is not None and user.locked_until and user.locked_until > now:
        minutes = max(1, round((user.locked_until - now).total_seconds() / 60))
        raise AipError(ErrorCode.FORBIDDEN, f"Account locked after failed logins; try again in {minutes} min.")
    if user is None or not verify_password(password, user.password_hash):
        if user is not None:
            user.failed_logins += 1
            if user.failed_logins >= sysconfig.get(session, settings, "auth.max_failed_logins"):
                minutes = sysconfig.get(session, settings, "auth.lockout_minutes")
                user.locked_until = now + dt.timedelta(minutes=minutes)
                user.failed_logins = 0
            session.commit()  # the failure must count although the request fails
        raise AipError(ErrorCode.UNAUTHENTICATED, "Wrong username or password.")
    if not user.is_active:
        raise AipError(ErrorCode.FORBIDDEN, "This account is disabled; ask an admin to enable it.")
    user.failed_logins = 0
    user.locked_until = None
    return user
