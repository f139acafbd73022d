"""Rotating the platform's two keys: the token-signing key and the encryption key of secrets at rest.

Both live in the data dir (`secret_key`, `encryption_key`, mode 0600) unless given as AIP_SECRET_KEY /
AIP_ENCRYPTION_KEY. Rotation writes new key files beside the old ones, re-encrypts every stored secret in one
transaction, then moves the new files into place. Access tokens signed with the old key stop working (clients
refresh with their login, which is an opaque token); API tokens and logins stay valid. The platform reads its keys
at start: stop it before rotating and start it after.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from app.core.config import ENV_PREFIX, Settings
from app.core.crypto import decrypt, encrypt
from app.core.errors import invalid
from app.db.models import SystemSetting
from app.db.session import session_scope
from app.services.system.sysconfig import SPECS

KEY_FILES = {"secret_key": "secret_key", "encryption_key": "encryption_key"}


@dataclass(frozen=True)
class Rotated:
    key_files: list[Path]
    secrets_reencrypted: int


def rotate(settings: Settings) -> Rotated:
    """New keys into the data dir and every stored secret re-encrypted with the new encryption key.

    Raises:
        AipError: a key comes from the environment (rotate it there: the platform cannot change it).
    """
    from_env = [f"{ENV_PREFIX}{name.upper()}" for name in KEY_FILES if os.environ.get(f"{ENV_PREFIX}{name.upper()}")]
    if from_env:
        raise invalid(
            f"{', '.join(from_env)} set in the environment: this command rotates keys kept in the data dir only. "
            "Unset them (the platform then uses the data dir's files), or rotate them where they are set."
        )
    new = {"secret_key": secrets.token_urlsafe(48), "encryption_key": Fernet.generate_key().decode()}
    staged = {name: _stage(settings.data_dir / file, new[name]) for name, file in KEY_FILES.items()}
    rotated = settings.model_copy(update={"encryption_key": new["encryption_key"]})
    count = 0
    with session_scope(settings.database_url) as session:
        secret_keys = [key for key, spec in SPECS.items() if spec.secret]
        for row in session.scalars(select(SystemSetting).where(SystemSetting.key.in_(secret_keys))):
            if row.value.get("encrypted"):
                row.value = {"encrypted": encrypt(rotated, decrypt(settings, row.value["encrypted"]))}
                count += 1
    # Committed: the new encryption key is the only one that reads the secrets now. Into place with it.
    paths = []
    for name, file in KEY_FILES.items():
        target = settings.data_dir / file
        staged[name].replace(target)
        paths.append(target)
    return Rotated(key_files=paths, secrets_reencrypted=count)


def _stage(path: Path, value: str) -> Path:
    staged = path.with_name(f"{path.name}.new")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return staged
