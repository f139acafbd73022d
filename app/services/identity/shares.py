"""Sharing an owned resource (dataset, model) with another user, read-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.core.errors import conflict, forbidden, invalid, not_found
from app.db.models import Dataset, Model, Share, User
from app.db.session import rows_changed
from app.services.identity import users
from app.services.identity.access import can_read, can_write

SHAREABLE: dict[str, Any] = {"dataset": Dataset, "model": Model}


def _resource(session: Session, *, user: User, kind: str, resource_id: int) -> Any:
    model = SHAREABLE[kind]
    resource = session.get(model, resource_id)
    if resource is None or not can_read(user, resource):
        raise not_found(kind.capitalize(), resource_id)
    if not can_write(user, resource):
        raise forbidden(f"Only the owner of {kind} {resource_id} (or an admin) can share it.")
    return resource


def share(session: Session, *, user: User, kind: str, resource_id: int, username: str) -> Share:
    resource = _resource(session, user=user, kind=kind, resource_id=resource_id)
    target = users.find_user(session, username)
    if target.id == resource.owner_id:
        raise invalid(f"{username!r} owns this {kind} already.")
    table = SHAREABLE[kind].__tablename__
    existing = session.scalar(
        select(Share).where(Share.resource_type == table, Share.resource_id == resource_id, Share.user_id == target.id)
    )
    if existing:
        raise conflict(f"{kind.capitalize()} {resource_id} is already shared with {username!r}.")
    row = Share(resource_type=table, resource_id=resource_id, user_id=target.id, created_by=user.id)
    session.add(row)
    session.flush()
    return row


def unshare(session: Session, *, user: User, kind: str, resource_id: int, username: str) -> None:
    _resource(session, user=user, kind=kind, resource_id=resource_id)
    target = users.find_user(session, username)
    table = SHAREABLE[kind].__tablename__
    statement = delete(Share).where(
        Share.resource_type == table, Share.resource_id == resource_id, Share.user_id == target.id
    )
    if not rows_changed(session, statement):
        raise not_found("Share with", repr(username))


def shared_with(session: Session, *, user: User, kind: str, resource_id: int) -> list[str]:
    _resource(session, user=user, kind=kind, resource_id=resource_id)
    table = SHAREABLE[kind].__tablename__
    return list(
        session.scalars(
            select(User.username)
            .join(Share, Share.user_id == User.id)
            .where(Share.resource_type == table, Share.resource_id == resource_id)
            .order_by(User.username)
        )
    )
