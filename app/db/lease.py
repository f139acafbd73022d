"""A lease in the database that one holder at a time keeps by renewing it: the control plane's replicas elect the
one that runs the reconcile loop this way (app.services.reconcile).

Taking and renewing are one conditional UPDATE (`WHERE holder = me OR expires_at < now`): the database decides
between replicas that race, on SQLite, PostgreSQL and MariaDB alike, with no row locks held between passes.
Expiry is judged by each replica's clock (UTC), so replicas' clocks must agree to well within the lease's length
(NTP does); a holder that stops renewing loses the lease `ttl_s` after its last renewal.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from sqlalchemy import case, or_, update
from sqlalchemy.orm import Session

from app.core.errors import AipError, ErrorCode
from app.db.models import Lease, utcnow
from app.db.session import rows_changed, session_scope


def new_holder_id() -> str:
    """Names this process (host, pid) uniquely enough that two replicas on one host differ."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def try_acquire(url: str, name: str, holder: str, ttl_s: float) -> bool:
    """Takes or renews the lease `name` for `ttl_s` seconds from now; False while another holder's is unexpired."""
    with session_scope(url) as session:
        if _claim(session, name, holder, ttl_s):
            return True
        if session.get(Lease, name) is not None:
            return False
    # The first replica ever creates the row; one that loses the race to insert it simply is not the holder.
    try:
        with session_scope(url) as session:
            now = utcnow()
            session.add(Lease(name=name, holder=holder, expires_at=_after(now, ttl_s), acquired_at=now, renewed_at=now))
        return True
    except AipError as e:
        if e.code == ErrorCode.CONFLICT:  # the duplicate key of another replica's row
            return False
        raise


def release(url: str, name: str, holder: str) -> bool:
    """Gives the lease up at once (a clean shutdown), so another replica need not wait for it to expire."""
    with session_scope(url) as session:
        return (
            rows_changed(
                session,
                update(Lease)
                .where(Lease.name == name, Lease.holder == holder)
                .values(holder="", expires_at=utcnow())
                .execution_options(synchronize_session=False),
            )
            == 1
        )


def current_holder(session: Session, name: str) -> str | None:
    """Who holds the lease now (None when nobody does or it expired)."""
    lease = session.get(Lease, name)
    if lease is None or not lease.holder or lease.expires_at <= utcnow():
        return None
    return lease.holder


def _claim(session: Session, name: str, holder: str, ttl_s: float) -> bool:
    now = utcnow()
    taken = Lease.holder == holder
    return (
        rows_changed(
            session,
            update(Lease)
            .where(Lease.name == name, or_(taken, Lease.expires_at < now))
            .values(
                holder=holder,
                expires_at=_after(now, ttl_s),
                renewed_at=now,
                # Keeps the time of the first claim while renewing; a takeover starts a new one.
                acquired_at=case((taken, Lease.acquired_at), else_=now),
            )
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def _after(now: dt.datetime, seconds: float) -> dt.datetime:
    return now + dt.timedelta(seconds=seconds)
