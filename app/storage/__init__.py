"""Storage chosen by URL scheme: `file://PATH` or `s3://BUCKET[/PREFIX]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.core.config import Settings
from app.storage.base import ObjectStore

SCHEMES = ("file", "s3")
CHECKPOINTS = "checkpoints"  # Ray Train's storage, under the platform's storage root


def open_store(settings: Settings) -> ObjectStore:
    parsed = urlparse(settings.storage_url)
    if parsed.scheme == "file":
        from app.storage.local import LocalStore

        return LocalStore(Path(parsed.netloc + parsed.path))
    if parsed.scheme == "s3":
        if not settings.s3_endpoint:
            raise ValueError("s3:// storage needs AIP_S3_ENDPOINT (host:port) and AIP_S3_ACCESS_KEY/SECRET_KEY.")
        from app.storage.s3 import S3Store

        return S3Store(
            bucket=parsed.netloc,
            prefix=parsed.path,
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            public_endpoint=settings.s3_public_endpoint,
        )
    raise ValueError(
        f"Unknown storage URL scheme {parsed.scheme!r} in AIP_STORAGE_URL; use one of: "
        + ", ".join(f"{s}://" for s in SCHEMES)
    )


def checkpoint_storage(settings: Settings) -> tuple[str, Any]:
    """Ray Train's `storage_path` (plus a pyarrow filesystem for S3) inside the platform's object storage."""
    parsed = urlparse(settings.storage_url)
    if parsed.scheme == "file":
        return str(Path(parsed.netloc + parsed.path) / CHECKPOINTS), None
    import pyarrow.fs

    filesystem = pyarrow.fs.S3FileSystem(
        endpoint_override=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        scheme="https" if settings.s3_secure else "http",
    )
    return f"{parsed.netloc}{parsed.path.rstrip('/')}/{CHECKPOINTS}", filesystem


def public_checkpoint(location: str) -> str | None:
    """A checkpoint's storage key (`checkpoints/...`, relative to the platform's storage) for responses: never the
    server's absolute path or bucket. None when the location is not under the platform's checkpoint storage."""
    parts = location.split("/")
    if CHECKPOINTS not in parts:
        return None
    start = len(parts) - 1 - parts[::-1].index(CHECKPOINTS)  # the last one: a data dir may contain the word too
    return "/".join(p for p in parts[start:] if p)


__all__ = ["ObjectStore", "checkpoint_storage", "open_store", "public_checkpoint"]
