"""System settings (the seed's sys_config): a registry of known keys with types, limits and defaults; admins
change values at run time; secret values are stored encrypted and never returned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.crypto import decrypt, encrypt
from app.core.errors import invalid, not_found
from app.db.models import SystemSetting, User

MASK = "********"


@dataclass(frozen=True)
class SettingSpec:
    key: str
    type: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False
    settings_field: str | None = None  # the AIP_* setting that supplies the default, where there is one

    def default_for(self, settings: Settings) -> Any:
        return getattr(settings, self.settings_field) if self.settings_field else self.default

    def validate(self, value: Any) -> Any:
        if value is None and self.default is None and not self.secret:
            return None  # a limit whose default is "none": null clears it
        if self.type is bool:
            if not isinstance(value, bool):
                raise invalid(f"{self.key} takes true or false, not {value!r}.")
            return value
        if self.type in (int, float):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (self.type is int and not float(value).is_integer())
            ):
                raise invalid(f"{self.key} takes a number ({self.type.__name__}), not {value!r}.")
            value = self.type(value)
            if self.minimum is not None and value < self.minimum:
                raise invalid(f"{self.key} must be at least {self.minimum:g}, not {value}.")
            if self.maximum is not None and value > self.maximum:
                raise invalid(f"{self.key} must be at most {self.maximum:g}, not {value}.")
            return value
        if not isinstance(value, str) or len(value) > 2048:
            raise invalid(f"{self.key} takes a text of up to 2048 characters.")
        return value


GiB = 1024**3
SPECS = {
    spec.key: spec
    for spec in (
        SettingSpec("auth.password_min_length", int, 10, "Shortest password accepted", 8, 128),
        SettingSpec("auth.password_require_mixed", bool, True, "Passwords need letters and digits"),
        SettingSpec(
            "auth.max_failed_logins", int, 5, "Failed logins of one account from one address before it waits", 1, 100
        ),
        SettingSpec(
            "auth.max_failed_logins_per_address",
            int,
            50,
            "Failed logins from one address (any usernames) before it may only log in users known there",
            1,
            100_000,
        ),
        SettingSpec(
            "auth.lockout_minutes", int, 15, "Longest wait after failed logins (it doubles from 1 min)", 1, 10_080
        ),
        SettingSpec("auth.refresh_token_days", int, 7, "Lifetime of a login (refresh token)", 1, 90),
        SettingSpec(
            "upload.max_file_bytes",
            int,
            10 * GiB,
            "Largest dataset file accepted",
            1,
            10 * 1024 * GiB,
            settings_field="max_upload_bytes",
        ),
        SettingSpec(
            "quota.user_storage_bytes",
            int,
            100 * GiB,
            "Dataset bytes each user may keep",
            0,
            1024 * 1024 * GiB,
            settings_field="user_quota_bytes",
        ),
        SettingSpec(
            "quota.user_max_gpus",
            float,
            None,
            "GPUs one user's jobs may hold at once (empty: no limit)",
            0,
            4096,
            settings_field="max_gpus_per_user",
        ),
        SettingSpec("quota.user_max_cpus", float, None, "CPUs one user's jobs may hold at once (empty: no limit)", 0),
        SettingSpec(
            "quota.user_max_jobs", int, None, "Jobs and tuning runs one user may run at once (empty: no limit)", 0
        ),
        SettingSpec(
            "metrics.usage_sample_s", float, 10.0, "Seconds between resource samples of a job's workers", 1, 3600
        ),
        SettingSpec("alerts.cpu_percent", float, 90.0, "Node CPU use that raises an alert", 1, 100),
        SettingSpec("alerts.memory_percent", float, 90.0, "Node memory use that raises an alert", 1, 100),
        SettingSpec("alerts.gpu_memory_percent", float, 95.0, "GPU memory use that raises an alert", 1, 100),
        SettingSpec("alerts.webhook_url", str, "", "Where alerts are posted (empty: none)"),
        SettingSpec("alerts.webhook_token", str, "", "Bearer token sent with alert webhooks", secret=True),
    )
}


def _spec(key: str) -> SettingSpec:
    if key not in SPECS:
        raise not_found("Setting", f"{key!r} (known: {', '.join(sorted(SPECS))})")
    return SPECS[key]


def get(session: Session, settings: Settings, key: str) -> Any:
    """The current value: the admin's, or the default."""
    spec = _spec(key)
    row = session.get(SystemSetting, key)
    if row is None:
        return spec.default_for(settings)
    if spec.secret:
        return decrypt(settings, row.value["encrypted"]) if row.value.get("encrypted") else ""
    return row.value["value"]


def put(session: Session, settings: Settings, *, key: str, value: Any, user: User) -> dict[str, Any]:
    """Sets a value; returns the setting as `describe` shows it."""
    spec = _spec(key)
    value = spec.validate(value)
    stored = {"encrypted": encrypt(settings, value) if value else ""} if spec.secret else {"value": value}
    row = session.get(SystemSetting, key)
    if row is None:
        session.add(SystemSetting(key=key, value=stored, updated_by=user.id))
    else:
        row.value = stored
        row.updated_by = user.id
    session.flush()
    return _describe(session, settings, spec)


def describe(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Every setting with its value; secrets show only whether they are set."""
    return [_describe(session, settings, spec) for _, spec in sorted(SPECS.items())]


def _describe(session: Session, settings: Settings, spec: SettingSpec) -> dict[str, Any]:
    value = get(session, settings, spec.key)
    return {
        "key": spec.key,
        "type": spec.type.__name__,
        "value": (MASK if value else "") if spec.secret else value,
        "default": "" if spec.secret else spec.default_for(settings),
        "secret": spec.secret,
        "description": spec.description,
        "minimum": spec.minimum,
        "maximum": spec.maximum,
    }
