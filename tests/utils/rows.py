"""Database rows for tests that exercise the schema and services directly (no API, no storage)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Dataset, DatasetVersion, User


def add_user(s: Session, username: str) -> User:
    user = User(username=username, password_hash="x")
    s.add(user)
    s.flush()
    return user


def add_dataset_version(
    s: Session,
    owner: User,
    *,
    name: str = "d",
    size_bytes: int = 1,
    num_rows: int = 1,
    columns: list[Any] | None = None,
) -> DatasetVersion:
    """Version 1 of a new CSV dataset of `owner` (no bytes behind it: only the row)."""
    dataset = Dataset(name=name, owner_id=owner.id)
    s.add(dataset)
    s.flush()
    version = DatasetVersion(
        dataset_id=dataset.id,
        version=1,
        file_name=f"{name}.csv",
        format="csv",
        storage_key=f"datasets/{dataset.id}/v1/{name}.csv",
        size_bytes=size_bytes,
        sha256="0" * 64,
        num_rows=num_rows,
        columns=columns or [],
    )
    s.add(version)
    s.flush()
    return version
