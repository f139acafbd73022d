"""Who may see and change which resource: owners, admins, and users a resource is shared with.

Every service that reads an owned row goes through `can_read` / `can_write` / `readable`, so ownership rules live
in one place. A share gives read access (see it, train on it, deploy it); changing and deleting stay with the
owner and admins.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import ColumnElement, exists, or_, select, true
from sqlalchemy.orm import object_session

from app.core.permissions import ALL
from app.db.models import Share, User


class Owned(Protocol):
    __tablename__: str
    id: Any
    owner_id: Any


def is_superuser(user: User) -> bool:
    return ALL in user.permissions


def can_write(user: User, resource: Owned) -> bool:
    return is_superuser(user) or resource.owner_id == user.id


def can_read(user: User, resource: Owned) -> bool:
    if can_write(user, resource):
        return True
    session = object_session(resource)
    return session is not None and bool(
        session.scalar(select(_shared_with(user, type(resource))).where(Share.resource_id == resource.id))
    )


def readable(user: User, model: Any) -> ColumnElement[bool]:
    """A WHERE clause selecting the rows of `model` (an owned table) that `user` may see."""
    if is_superuser(user):
        return true()
    return or_(model.owner_id == user.id, _shared_with(user, model).where(Share.resource_id == model.id))


def _shared_with(user: User, model: Any) -> Any:
    return exists().where(Share.resource_type == model.__tablename__, Share.user_id == user.id)
