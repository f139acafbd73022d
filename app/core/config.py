"""The platform's one settings object, read from `AIP_*` environment variables.

Embedded defaults put everything under one data directory: a SQLite database, object storage on the local
filesystem and a local Ray cluster owned by the platform. Processes that Ray starts for the platform (the API
replica, training jobs, model servers) receive the same settings explicitly through `worker_env()`.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AIP_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(default=Path(".data"), description="Holds the database, objects and Ray temp files.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite in the data dir.")
    storage_url: str = Field(default="", description="file://PATH or s3://BUCKET[/PREFIX]; empty: data dir.")
    s3_endpoint: str = Field(default="", description="host:port of the S3 server for s3:// storage.")
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = False

    ray_address: str = Field(default="", description="GCS address of an existing cluster; empty: start one.")
    ray_port: int = Field(default=6390, description="GCS port of the platform's own cluster (not Redis' 6379).")
    ray_dashboard_port: int = 8265
    ray_dashboard_host: str = Field(
        default="127.0.0.1", description="Where the control plane reaches Ray's dashboard (the head's address)."
    )
    ray_num_cpus: int | None = None

    http_host: str = "127.0.0.1"
    http_port: int = 8000

    secret_key: str = Field(default="", description="Signs tokens; empty: generated once into the data dir.")
    encryption_key: str = Field(default="", description="Fernet key for secrets at rest; empty: generated once.")
    access_token_minutes: int = Field(default=15, ge=1)
    admin_username: str = "admin"
    admin_password: str = Field(default="", description="Empty: generated once and shown by `aiplatform up`.")

    reconcile_interval_s: float = Field(default=2.0, gt=0)
    leader_lease_s: float = Field(
        default=10.0,
        gt=0,
        description="One control-plane replica runs the reconcile loop, holding a lease it renews each pass; "
        "another takes over this long after the leader stops renewing. Keep it several reconcile intervals long.",
    )
    node_failure_window_s: float = Field(
        default=24 * 3600, gt=0, description="Training workers that died on a node count against it for this long."
    )
    warm_workers_per_node: int = Field(
        default=2, ge=0, le=64, description="Train workers each node keeps started and imported for CPU jobs; 0: none."
    )
    custom_code_max_hours: float = Field(
        default=24, gt=0, description="CPU time cap of a custom-code worker: hours x its CPUs (SECURITY.md)."
    )
    max_gpus_per_user: float | None = Field(default=None, ge=0, description="GPUs one user's jobs may hold at once.")

    max_upload_bytes: int = Field(default=10 << 30, gt=0, description="Largest dataset file one upload may hold.")
    user_quota_bytes: int = Field(default=100 << 30, gt=0, description="Dataset bytes (versions + open uploads).")
    upload_max_chunk_bytes: int = Field(default=64 << 20, ge=1024, description="Largest chunk of an upload.")
    upload_session_ttl_s: float = Field(default=24 * 3600, gt=0, description="Idle uploads expire after this.")
    upload_direct: bool = Field(default=True, description="On S3, offer clients presigned part uploads.")
    upload_url_ttl_s: int = Field(default=600, ge=10, le=3600, description="Lifetime of a presigned part URL.")
    s3_public_endpoint: str = Field(
        default="", description="S3 as clients reach it for direct uploads ([http[s]://]host:port); empty: s3_endpoint."
    )

    # Bounds on what one request may hold (the API answers 413 or 422 naming the setting that refused it).
    max_json_body_bytes: int = Field(default=1 << 20, ge=1024, description="Largest request body of most routes.")
    max_predict_body_bytes: int = Field(default=32 << 20, ge=1024, description="Largest body of a predict request.")
    code_max_upload_bytes: int = Field(default=10 << 20, ge=1024, description="Largest custom code file (.py, .zip).")
    code_max_source_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest entry source (the .py, or train.py of a zip) checked at upload."
    )
    code_max_unpacked_bytes: int = Field(default=100 << 20, ge=1024, description="Unpacked size of a code zip.")
    code_max_entries: int = Field(default=10_000, ge=1, description="Files and folders in a code zip.")
    image_zip_max_unpacked_bytes: int = Field(default=50 << 30, ge=1024, description="Unpacked size of an image zip.")
    image_zip_max_entries: int = Field(default=2_000_000, ge=1, description="Files and folders in an image zip.")
    archive_max_ratio: float = Field(
        default=100.0, ge=2, description="Largest unpacked/packed size of a zip member over 1 MiB (refuses zip bombs)."
    )

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'aiplatform.db'}"
        if not self.storage_url:
            self.storage_url = f"file://{self.data_dir / 'objects'}"
        if not self.secret_key:
            self.secret_key = _read_or_create_secret(self.data_dir / "secret_key", secrets.token_urlsafe(48))
        if not self.encryption_key:
            self.encryption_key = _read_or_create_secret(self.data_dir / "encryption_key", _new_fernet_key())
        return self

    def _is_secret(self, name: str) -> bool:
        # A database URL with a password in it is a secret too.
        return name in SECRET_FIELDS or (name == "database_url" and "@" in self.database_url.split("//", 1)[-1])

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.ray_dashboard_host}:{self.ray_dashboard_port}"

    @property
    def gcs_address(self) -> str:
        return self.ray_address or f"127.0.0.1:{self.ray_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def admin_password_file(self) -> Path:
        """Where a platform started without a terminal keeps the first admin's generated password (mode 0600)."""
        return self.data_dir / "admin_password"

    @property
    def ray_temp_dir(self) -> Path:
        # Ray's socket paths must stay under 107 bytes, so long data dirs get a short private temp dir.
        return Path("/tmp") / f"aip-ray-{self.ray_port}"

    def worker_env(self, *, with_secrets: bool = False) -> dict[str, str]:
        """Environment for the processes Ray runs for the platform, so they see the same settings.

        Secrets are left out unless asked for: a Ray job's or Serve app's runtime_env is readable through Ray's
        dashboard. Ray's processes inherit them from the head's environment (or the pod's, on Kubernetes); the
        generated ones are read from the data dir.
        """
        env = {
            f"{ENV_PREFIX}{name.upper()}": str(value)
            for name, value in self.model_dump().items()
            if value is not None and value != "" and (with_secrets or not self._is_secret(name))
        }
        env["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "disabled")
        return dict(sorted(env.items()))


SECRET_FIELDS = frozenset({"secret_key", "encryption_key", "admin_password", "s3_secret_key"})


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _read_or_create_secret(path: Path, value: str) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
