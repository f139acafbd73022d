from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.crypto import decrypt, encrypt
from app.core.errors import AipError


def test_secrets_round_trip_and_need_the_same_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "a")
    ciphertext = encrypt(settings, "ssh-private-key")
    assert "ssh-private-key" not in ciphertext
    assert decrypt(settings, ciphertext) == "ssh-private-key"
    with pytest.raises(AipError, match="AIP_ENCRYPTION_KEY"):
        decrypt(Settings(data_dir=tmp_path / "b"), ciphertext)
