"""Administration: users, roles, the permission catalog, the audit log and system settings."""

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, require
from app.api.schemas import Page
from app.api.schemas_auth import (
    AuditPublic,
    PasswordReset,
    RoleCreate,
    RolePublic,
    RoleUpdate,
    SettingValue,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from app.core.permissions import PERMISSIONS
from app.db.models import User
from app.services.identity import roles, users
from app.services.system import audit, sysconfig

router = APIRouter(prefix="/system", tags=["system"])


@router.get("/user", response_model=Page[UserPublic])
def list_users(
    session: SessionDep,
    page: PageDep,
    username: str | None = Query(default=None, max_length=64, description="Users whose name contains this."),
    is_active: bool | None = None,
    _: User = Depends(require("system:user:list")),
) -> Page[UserPublic]:
    """Sorts: id (default), username, created_at."""
    found = users.list_users(session, request=page, username=username, is_active=is_active)
    items = [UserPublic.of(u) for u in found.items]
    return Page[UserPublic](items=items, total=found.total, limit=found.limit, offset=found.offset)


@router.post("/user", response_model=UserPublic, status_code=201)
def create_user(
    body: UserCreate, session: SessionDep, settings: SettingsDep, _: User = Depends(require("system:user:add"))
) -> UserPublic:
    return UserPublic.of(
        users.create_user(session, settings, username=body.username, password=body.password, roles=body.roles)
    )


@router.patch("/user/{user_id}", response_model=UserPublic)
def update_user(
    user_id: IdPath, body: UserUpdate, session: SessionDep, actor: User = Depends(require("system:user:edit"))
) -> UserPublic:
    user = users.update_user(
        session, actor=actor, user_id=user_id, roles=body.roles, is_active=body.is_active, unlock=body.unlock
    )
    return UserPublic.of(user)


@router.post("/user/{user_id}/unlock", response_model=UserPublic)
def unlock_user(user_id: IdPath, session: SessionDep, _: User = Depends(require("system:user:edit"))) -> UserPublic:
    """Ends the waits that failed logins put on the user's logins, from every address."""
    return UserPublic.of(users.unlock(session, user_id=user_id))


@router.post("/user/{user_id}/password", status_code=204)
def reset_password(
    user_id: IdPath,
    body: PasswordReset,
    session: SessionDep,
    settings: SettingsDep,
    _: User = Depends(require("system:user:edit")),
) -> Response:
    users.reset_password(session, settings, user_id=user_id, password=body.password)
    return Response(status_code=204)


@router.get("/role", response_model=Page[RolePublic])
def list_roles(session: SessionDep, page: PageDep, _: User = Depends(require("system:role:list"))) -> object:
    """Sorts: name (default), id."""
    return roles.list_roles(session, request=page)


@router.post("/role", response_model=RolePublic, status_code=201)
def create_role(body: RoleCreate, session: SessionDep, _: User = Depends(require("system:role:edit"))) -> object:
    return roles.create_role(
        session, name=body.name, description=body.description, permissions=body.permissions, limits=body.limits
    )


@router.put("/role/{role_id}", response_model=RolePublic)
def update_role(
    role_id: IdPath, body: RoleUpdate, session: SessionDep, _: User = Depends(require("system:role:edit"))
) -> object:
    return roles.update_role(
        session, role_id=role_id, description=body.description, permissions=body.permissions, limits=body.limits
    )


@router.delete("/role/{role_id}", status_code=204)
def delete_role(role_id: IdPath, session: SessionDep, _: User = Depends(require("system:role:edit"))) -> Response:
    roles.delete_role(session, role_id=role_id)
    return Response(status_code=204)


@router.get("/permission")
def list_permissions(_: User = Depends(require("system:role:list"))) -> dict[str, str]:
    return PERMISSIONS


@router.get("/audit", response_model=Page[AuditPublic])
def query_audit(
    session: SessionDep,
    page: PageDep,
    username: str | None = None,
    action: str | None = None,
    result: Literal["success", "failure"] | None = None,
    path_prefix: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    _: User = Depends(require("system:audit:list")),
) -> object:
    """Newest first; sorts: id, created_at."""
    return audit.query(
        session,
        username=username,
        action=action,
        result=result,
        path_prefix=path_prefix,
        since=since,
        until=until,
        request=page,
    )


@router.get("/config")
def list_settings(
    session: SessionDep, settings: SettingsDep, _: User = Depends(require("system:config:list"))
) -> list[dict[str, Any]]:
    return sysconfig.describe(session, settings)


@router.put("/config/{key}")
def update_setting(
    key: str,
    body: SettingValue,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("system:config:edit")),
) -> dict[str, Any]:
    return sysconfig.put(session, settings, key=key, value=body.value, user=user)
