"""Roles: the built-in admin / developer / viewer, and custom roles made of catalog permissions."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import conflict, invalid, not_found
from app.core.permissions import check_known
from app.db.models import Role, user_roles

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_\-]{1,63}$")


def list_roles(session: Session) -> list[Role]:
    return list(session.scalars(select(Role).order_by(Role.name)))


def _permissions(permissions: list[str]) -> list[str]:
    try:
        return sorted({check_known(p) for p in permissions})
    except ValueError as e:
        raise invalid(str(e)) from e


def create_role(session: Session, *, name: str, description: str, permissions: list[str]) -> Role:
    if not ROLE_NAME.match(name):
        raise invalid("Role names are 2-64 lowercase letters, digits, '_' or '-', starting with a letter.")
    if session.scalar(select(Role).where(Role.name == name)):
        raise conflict(f"Role {name!r} already exists.")
    role = Role(name=name, description=description, builtin=False, permissions=_permissions(permissions))
    session.add(role)
    session.flush()
    return role


def _custom_role(session: Session, role_id: int) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise not_found("Role", role_id)
    if role.builtin:
        raise conflict(f"Role {role.name!r} is built in and cannot be changed; create a custom role instead.")
    return role


def update_role(session: Session, *, role_id: int, description: str | None, permissions: list[str] | None) -> Role:
    role = _custom_role(session, role_id)
    if description is not None:
        role.description = description
    if permissions is not None:
        role.permissions = _permissions(permissions)
    session.flush()
    return role


def delete_role(session: Session, *, role_id: int) -> None:
    role = _custom_role(session, role_id)
    holders = session.scalar(select(func.count()).select_from(user_roles).where(user_roles.c.role_id == role.id))
    if holders:
        raise conflict(f"Role {role.name!r} is held by {holders} user(s); take it from them first.")
    session.delete(role)
