"""Failed-login throttling that an outsider cannot turn against a user.

Failures count per username *and* client address, so guessing `admin`'s password from one address makes only that
address wait; `admin` logging in from anywhere else is not affected. After `auth.max_failed_logins` failures the
pair waits 1 minute, then 2, 4, ... up to `auth.lockout_minutes`. An address that fails
`auth.max_failed_logins_per_address` times across usernames (password spraying) is refused for usernames that
have not logged in from it before. The counts live in the database, so every API replica applies the same ones;
an admin's unlock clears a user's counts.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AipError
from app.db.models import LoginThrottle, User, utcnow
from app.db.session import rows_changed, session_scope
from app.services.system import sysconfig

ANY_USER = ""  # the row counting an address's failures across usernames
MAX_BACKOFF_EXPONENT = 16


def _key(username: str, client_ip: str) -> tuple[str, str]:
    return username[:64], client_ip[:64]


def blocked(session: Session, *, username: str, client_ip: str) -> bool:
    """Whether logins of `username` from `client_ip` must wait now (the answer is the same as a wrong password)."""
    now = utcnow()
    user, ip = _key(username, client_ip)
    rows = {
        row.username: row
        for row in session.scalars(
            select(LoginThrottle).where(LoginThrottle.client_ip == ip, LoginThrottle.username.in_([user, ANY_USER]))
        )
    }
    pair, address = rows.get(user), rows.get(ANY_USER)
    if pair is not None and pair.blocked_until is not None and pair.blocked_until > now:
        return True
    if address is None or address.blocked_until is None or address.blocked_until <= now:
        return False
    return pair is None or pair.last_success_at is None  # a user known at this address still gets in


def record_failure(settings: Settings, *, username: str, client_ip: str) -> None:
    """Counts a failed login in its own transaction (the request itself fails) and blocks the pair, or the
    address, once over its limit."""
    user, ip = _key(username, client_ip)
    with session_scope(settings.database_url) as session:
        per_pair = sysconfig.get(session, settings, "auth.max_failed_logins")
        per_address = sysconfig.get(session, settings, "auth.max_failed_logins_per_address")
        window = dt.timedelta(minutes=sysconfig.get(session, settings, "auth.lockout_minutes"))
    for name, limit in ((user, per_pair), (ANY_USER, per_address)):
        _count(settings, username=name, client_ip=ip, limit=limit, window=window)


def _count(settings: Settings, *, username: str, client_ip: str, limit: int, window: dt.timedelta) -> None:
    now = utcnow()
    for attempt in range(2):  # a concurrent first failure inserted the row: count on it
        try:
            with session_scope(settings.database_url) as session:
                row = session.get(LoginThrottle, (username, client_ip), with_for_update=True)
                if row is None:
                    row = LoginThrottle(username=username, client_ip=client_ip, failures=0)
                    session.add(row)
                elif row.last_failure_at is not None and row.last_failure_at < now - window:
                    row.failures = 0  # failures long ago no longer count
                row.failures += 1
                row.last_failure_at = now
                if row.failures >= limit:
                    minutes = min(2.0 ** min(row.failures - limit, MAX_BACKOFF_EXPONENT), window.total_seconds() / 60)
                    row.blocked_until = now + dt.timedelta(minutes=minutes)
                    if username != ANY_USER:  # shown to admins in the user list
                        session.execute(
                            update(User).where(User.username == username).values(locked_until=row.blocked_until)
                        )
            return
        except AipError as e:
            if attempt or not isinstance(e.__cause__, IntegrityError):
                raise


def record_success(settings: Settings, *, username: str, client_ip: str) -> None:
    """Clears the pair's failures and remembers that this user logs in from this address."""
    user, ip = _key(username, client_ip)
    values = {"failures": 0, "blocked_until": None, "last_success_at": utcnow()}
    for attempt in range(2):  # as in _count: a concurrent login from the same pair inserted the row
        try:
            with session_scope(settings.database_url) as session:
                pair = update(LoginThrottle).where(LoginThrottle.username == user, LoginThrottle.client_ip == ip)
                if not rows_changed(session, pair.values(values)):
                    session.add(LoginThrottle(username=user, client_ip=ip, **values))
            return
        except AipError as e:
            if attempt or not isinstance(e.__cause__, IntegrityError):
                raise


def unlock(session: Session, *, user: User) -> None:
    """An admin ends every wait of `user`, from every address."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.username == user.username))
    user.failed_logins = 0
    user.locked_until = None
