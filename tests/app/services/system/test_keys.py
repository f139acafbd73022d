"""`aiplatform keys rotate`: new keys in the data dir, stored secrets re-encrypted, old access tokens refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli.main import app
from app.core.config import Settings, get_settings
from app.core.errors import AipError, ErrorCode
from app.core.security import create_access_token, decode_access_token
from app.db.session import session_scope, upgrade_schema
from app.services.system import sysconfig
from tests.utils.rows import add_user


def test_rotate_reencrypts_secrets_and_ends_old_access_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIP_SECRET_KEY", "AIP_ENCRYPTION_KEY", "AIP_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIP_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    old = get_settings()
    upgrade_schema(old.database_url)
    with session_scope(old.database_url) as s:
        sysconfig.put(s, old, key="alerts.webhook_token", value="hook-s3cret", user=add_user(s, "root"))
    token = create_access_token(user_id=1, session_id=1, secret_key=old.secret_key, minutes=5)

    result = CliRunner().invoke(app, ["keys", "rotate", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 stored secret(s) re-encrypted" in " ".join(result.output.split())

    new = Settings(data_dir=tmp_path)
    assert new.secret_key != old.secret_key and new.encryption_key != old.encryption_key
    assert {p.name for p in tmp_path.iterdir() if p.name.endswith(".new")} == set()
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    with session_scope(new.database_url) as s:
        assert sysconfig.get(s, new, "alerts.webhook_token") == "hook-s3cret"
        with pytest.raises(AipError, match="cannot be decrypted"):
            sysconfig.get(s, old, "alerts.webhook_token")
    with pytest.raises(AipError) as err:
        decode_access_token(token, secret_key=new.secret_key)
    assert err.value.code is ErrorCode.UNAUTHENTICATED
    get_settings.cache_clear()


def test_rotate_refuses_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIP_SECRET_KEY", "from-the-environment")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["keys", "rotate", "--yes"])
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "AIP_SECRET_KEY set in the environment" in " ".join(result.output.split())
