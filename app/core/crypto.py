"""Secrets at rest (SSH keys, storage credentials, secret settings): Fernet with the key from settings."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode


def encrypt(settings: Settings, plaintext: str) -> str:
    return Fernet(settings.encryption_key.encode()).encrypt(plaintext.encode()).decode()


def decrypt(settings: Settings, ciphertext: str) -> str:
    try:
        return Fernet(settings.encryption_key.encode()).decrypt(ciphertext.encode()).decode()
    except InvalidToken as e:
        raise AipError(
            ErrorCode.INTERNAL, "A stored secret cannot be decrypted: AIP_ENCRYPTION_KEY differs from the one used."
        ) from e
