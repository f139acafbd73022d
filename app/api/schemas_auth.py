"""Request and response bodies of login, accounts, users, roles, audit and system settings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import Strict, UtcDatetime
from app.services.identity.roles import RoleLimits


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LoginPublic(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class RolePublic(Public):
    id: int
    name: str
    description: str
    builtin: bool
    permissions: list[str]
    limits: dict[str, Any] | None = None  # scheduling limits of the role's holders (max_gpus, max_cpus, max_jobs)


class RoleCreate(Strict):
    name: str = Field(min_length=2, max_length=64)
    description: str = Field(default="", max_length=255)
    permissions: list[str]
    limits: RoleLimits | None = None


class RoleUpdate(Strict):
    description: str | None = Field(default=None, max_length=255)
    permissions: list[str] | None = None
    limits: RoleLimits | None = Field(default=None, description="Replaces the role's limits; {} clears them.")


class UserPublic(Public):
    id: int
    username: str
    is_active: bool
    created_at: UtcDatetime
    locked_until: UtcDatetime | None
    roles: list[str]

    @classmethod
    def of(cls, user: Any) -> UserPublic:
        return cls(
            id=user.id,
            username=user.username,
            is_active=user.is_active,
            created_at=user.created_at,
            locked_until=user.locked_until,
            roles=[r.name for r in user.roles],
        )


class AccountPublic(UserPublic):
    permissions: list[str]


class UserCreate(Strict):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    roles: list[str] = Field(default_factory=lambda: ["developer"])


class UserUpdate(Strict):
    roles: list[str] | None = None
    is_active: bool | None = None
    unlock: bool = False


class PasswordReset(Strict):
    password: str = Field(min_length=1, max_length=256)


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class ApiTokenCreate(Strict):
    name: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(min_length=1)
    expires_days: int | None = Field(default=90, ge=1, le=3650)


class ApiTokenPublic(Public):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    revoked_at: UtcDatetime | None
    last_used_at: UtcDatetime | None


class ApiTokenCreated(ApiTokenPublic):
    token: str = Field(description="Shown only now; store it safely.")


class AuditPublic(Public):
    id: int
    created_at: UtcDatetime
    user_id: int | None
    username: str
    method: str
    path: str
    action: str
    target: str
    status_code: int
    result: str
    message: str
    client_ip: str


class SettingValue(Strict):
    value: Any


class ShareRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
