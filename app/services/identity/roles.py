"""Roles: the built-in admin / developer / viewer, and custom roles made of catalog permissions.

A role may also carry scheduling limits for its holders (GPUs and CPUs their jobs may hold at once, jobs they may
run at once). A user's limit is the most generous one among their roles that set it; where none does, the system
setting (`quota.user_max_*`) applies.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import conflict, invalid, not_found
from app.core.permissions import check_known
from app.db.models import Role, User, user_roles
from app.db.paging import PageOf, PageRequest, page

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_\-]{1,63}$")


class RoleLimits(BaseModel):
    """What a role's holders may hold at once; a limit left out (null) is not set by this role."""

    model_config = ConfigDict(extra="forbid")
    max_gpus: float | None = Field(default=None, ge=0, le=4096, description="GPUs one user's jobs may hold at once.")
    max_cpus: float | None = Field(default=None, ge=0, le=1_000_000, description="CPUs one user's jobs may hold.")
    max_jobs: int | None = Field(default=None, ge=0, le=10_000, description="Jobs and tuning runs one user may run.")


def user_limits(user: User) -> dict[str, float]:
    """The most generous value of each limit among the user's roles; limits no role sets are left out."""
    limits: dict[str, float] = {}
    for role in user.roles:
        for key, value in (role.limits or {}).items():
            if value is not None:
                limits[key] = max(limits.get(key, value), value)
    return limits


def list_roles(session: Session, *, request: PageRequest = PageRequest()) -> PageOf[Role]:
    sortable = {"id": Role.id, "name": Role.name}
    return page(session, select(Role), request, sortable=sortable, default_sort="name", tiebreak=Role.id)


def _permissions(permissions: list[str]) -> list[str]:
    try:
        return sorted({check_known(p) for p in permissions})
    except ValueError as e:
        raise invalid(str(e)) from e


def create_role(
    session: Session, *, name: str, description: str, permissions: list[str], limits: RoleLimits | None = None
) -> Role:
    if not ROLE_NAME.match(name):
        raise invalid("Role names are 2-64 lowercase letters, digits, '_' or '-', starting with a letter.")
    if session.scalar(select(Role).where(Role.name == name)):
        raise conflict(f"Role {name!r} already exists.")
    role = Role(
        name=name,
        description=description,
        builtin=False,
        permissions=_permissions(permissions),
        limits=_stored(limits),
    )
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


def update_role(
    session: Session,
    *,
    role_id: int,
    description: str | None,
    permissions: list[str] | None,
    limits: RoleLimits | None = None,
) -> Role:
    """Changes a role; a built-in role's limits may change, its description and permissions may not."""
    if limits is not None and description is None and permissions is None:
        role = session.get(Role, role_id)
        if role is None:
            raise not_found("Role", role_id)
    else:
        role = _custom_role(session, role_id)
    if limits is not None:
        role.limits = _stored(limits)
    if description is not None:
        role.description = description
    if permissions is not None:
        role.permissions = _permissions(permissions)
    session.flush()
    return role


def _stored(limits: RoleLimits | None) -> dict[str, Any] | None:
    return limits.model_dump(exclude_none=True) if limits is not None else None


def delete_role(session: Session, *, role_id: int) -> None:
    role = _custom_role(session, role_id)
    holders = session.scalar(select(func.count()).select_from(user_roles).where(user_roles.c.role_id == role.id))
    if holders:
        raise conflict(f"Role {role.name!r} is held by {holders} user(s); take it from them first.")
    session.delete(role)
