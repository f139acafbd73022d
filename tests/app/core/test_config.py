from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.core.config import Settings


def test_embedded_defaults_live_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'aiplatform.db'}"
    assert settings.storage_url == f"file://{tmp_path / 'objects'}"
    secret_file = tmp_path / "secret_key"
    assert settings.secret_key == secret_file.read_text()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path).secret_key == settings.secret_key  # generated once


def test_worker_env_round_trips_and_decides_ray_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path, http_port=8123, ray_num_cpus=3)
    env = settings.worker_env()
    assert env["RAY_AUTH_MODE"] in ("disabled", "token")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIP_HTTP_PORT", "9999")
    settings = Settings()
    assert settings.http_port == 9999
    assert settings.api_url == "http://127.0.0.1:9999"


def test_secrets_stay_out_of_worker_env_unless_asked(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        admin_password="Adm1n-secret",
        s3_secret_key="s3-secret",
        database_url="postgresql+psycopg://app:db-secret@db.example/aip",
    )
    public = settings.worker_env()
    for secret in ("Adm1n-secret", "s3-secret", "db-secret", settings.secret_key, settings.encryption_key):
        assert secret not in "".join(public.values())
    full = settings.worker_env(with_secrets=True)
    assert full["AIP_S3_SECRET_KEY"] == "s3-secret" and full["AIP_DATABASE_URL"] == settings.database_url
