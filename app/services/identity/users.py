"""Users, built-in roles, password rules, and password login (throttled per account and address)."""

from __future__ import annotations

import functools
import os
import re
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, invalid, not_found
from app.core.permissions import ALL, BUILTIN_ROLES
from app.core.security import hash_password, verify_password
from app.db.models import Role, User, utcnow
from app.db.paging import PageOf, PageRequest, page
from app.services.identity import login_limit, tokens
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


def list_users(
    session: Session,
    *,
    request: PageRequest = PageRequest(),
    username: str | None = None,
    is_active: bool | None = None,
) -> PageOf[User]:
    """Users, with their roles; `username`: whose name contains it."""
    query = select(User).options(selectinload(User.roles))
    if username:
        query = query.where(User.username.contains(username, autoescape=True))
    if is_active is not None:
        query = query.where(User.is_active == is_active)
    sortable = {"id": User.id, "username": User.username, "created_at": User.created_at}
    return page(session, query, request, sortable=sortable, default_sort="id", tiebreak=User.id)


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
        login_limit.unlock(session, user=user)
    session.flush()
    return user


def set_password(session: Session, settings: Settings, *, user: User, password: str) -> None:
    """Sets a new password and ends the user's logins (their refresh tokens), so old sessions cannot go on."""
    check_password(session, settings, password, username=user.username)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    login_limit.unlock(session, user=user)  # a new password ends the waits too
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


# One answer for an unknown user, a wrong password and a login that must wait, so the answer tells an outsider
# neither which usernames exist nor that an account is being attacked.
LOGIN_FAILED = (
    "Wrong username or password. After repeated failures, logins of this account from this address wait up to "
    "auth.lockout_minutes; an admin can unlock the account."
)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so an unknown user takes as long to refuse as a wrong
    password."""
    return hash_password(secrets.token_urlsafe(16))


def authenticate(session: Session, settings: Settings, *, username: str, password: str, client_ip: str) -> User:
    """Checks a password login; failures slow down further tries of that username from that address only."""
    if login_limit.blocked(session, username=username, client_ip=client_ip):
        raise AipError(ErrorCode.UNAUTHENTICATED, LOGIN_FAILED)
    user = session.scalar(select(User).where(User.username == username))
    if not verify_password(password, user.password_hash if user else _dummy_hash()) or user is None:
        login_limit.record_failure(settings, username=username, client_ip=client_ip)
        raise AipError(ErrorCode.UNAUTHENTICATED, LOGIN_FAILED)
    if not user.is_active:  # only a caller who knows the password learns this
        raise AipError(ErrorCode.FORBIDDEN, "This account is disabled; ask an admin to enable it.")
    login_limit.record_success(settings, username=username, client_ip=client_ip)
    return user


def unlock(session: Session, *, user_id: int) -> User:
    """Ends the waits of a user's logins from every address (an admin's action)."""
    user = get_user(session, user_id)
    login_limit.unlock(session, user=user)
    return user
