"""The audit log: every state-changing request, and admins' queries over it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import AuditEntry
from app.db.paging import PageOf, PageRequest, page


def record(session: Session, entry: AuditEntry) -> None:
    session.add(entry)


def query(
    session: Session,
    *,
    username: str | None = None,
    action: str | None = None,
    result: str | None = None,
    path_prefix: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    request: PageRequest = PageRequest(),
) -> PageOf[AuditEntry]:
    stmt = select(AuditEntry)
    if username:
        stmt = stmt.where(AuditEntry.username == username)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if result:
        stmt = stmt.where(AuditEntry.result == result)
    if path_prefix:
        stmt = stmt.where(AuditEntry.path.startswith(path_prefix, autoescape=True))
    if since:
        stmt = stmt.where(AuditEntry.created_at >= since)
    if until:
        stmt = stmt.where(AuditEntry.created_at < until)
    sortable = {"id": AuditEntry.id, "created_at": AuditEntry.created_at}
    return page(session, stmt, request, sortable=sortable, default_sort="-id", tiebreak=AuditEntry.id)
