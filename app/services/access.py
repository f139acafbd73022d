"""Who may see and change which resource: owners, admins, and users a resource is shared with.

Every service that reads an owned row goes through `can_read` / `can_write` / `readable`, so ownership rules live
in one place.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import ColumnElement, true

from app.db.models import User


class Owned(Protocol):
    id: Any
    owner_id: Any


def is_superuser(user: User) -> bool:
    return bool(user.is_admin)


def can_read(user: User, resource: Owned) -> bool:
    return is_superuser(user) or resource.owner_id == user.id


def can_write(user: User, resource: Owned) -> bool:
    return is_superuser(user) or resource.owner_id == user.id


def readable(user: User, model: Any) -> ColumnElement[bool]:
    """A WHERE clause selecting the rows of `model` (an owned table) that `user` may see."""
    if is_superuser(user):
        return true()
    return model.owner_id == user.id
