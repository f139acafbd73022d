"""Datasets and their immutable versions (single-request upload of CSV files)."""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import PurePosixPath
from typing import BinaryIO

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import invalid, not_found
from app.db.models import Dataset, DatasetVersion, User
from app.services.access import can_read, readable
from app.storage import ObjectStore

SUPPORTED_FORMATS = ("csv",)


def create_dataset(session: Session, *, owner: User, name: str, description: str = "") -> Dataset:
    dataset = Dataset(name=name, description=description, owner_id=owner.id)
    session.add(dataset)
    session.flush()
    return dataset


def list_datasets(session: Session, *, user: User) -> list[Dataset]:
    return list(session.scalars(select(Dataset).where(readable(user, Dataset)).order_by(Dataset.id)))


def get_dataset(session: Session, *, user: User, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or not can_read(user, dataset):
        raise not_found("Dataset", dataset_id)
    return dataset


def get_version(session: Session, *, user: User, version_id: int) -> DatasetVersion:
    version = session.get(DatasetVersion, version_id)
    if version is None or not can_read(user, version.dataset):
        raise not_found("Dataset version", version_id)
    return version


def safe_file_name(file_name: str) -> str:
    name = PurePosixPath(file_name.replace("\\", "/")).name
    if not name or name in (".", "..") or name != file_name or len(name) > 255:
        raise invalid(f"File name {file_name!r} is not allowed: send a plain name like 'data.csv', no paths.")
    return name


def add_version(
    session: Session, store: ObjectStore, *, dataset: Dataset, file_name: str, source: BinaryIO
) -> DatasetVersion:
    """Stores the uploaded file and records a new version; on any failure nothing is left behind."""
    name = safe_file_name(file_name)
    fmt = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if fmt not in SUPPORTED_FORMATS:
        raise invalid(f"Unsupported file type {fmt or '(none)'!r}: upload one of {', '.join(SUPPORTED_FORMATS)}.")
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        digest, size = _copy_hashing(source, spool)
        if size == 0:
            raise invalid("The file is empty.")
        spool.seek(0)
        frame = read_csv(spool)
        number = (
            session.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == dataset.id)) or 0
        ) + 1
        key = f"datasets/{dataset.id}/v{number}-{digest[:12]}/{name}"
        spool.seek(0)
        store.put_file(key, spool, size)
    version = DatasetVersion(
        dataset_id=dataset.id,
        version=number,
        file_name=name,
        format=fmt,
        storage_key=key,
        size_bytes=size,
        sha256=digest,
        num_rows=len(frame),
        columns=[{"name": str(c), "dtype": str(t)} for c, t in frame.dtypes.items()],
    )
    try:
        session.add(version)
        session.flush()
    except Exception:
        store.delete(key)
        raise
    return version


def read_csv(source: BinaryIO | bytes) -> pd.DataFrame:
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        frame = pd.read_csv(data)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise invalid(f"The file is not a readable CSV: {e}. Send comma-separated text with a header row.") from e
    if frame.empty:
        raise invalid("The CSV has a header but no rows.")
    return frame


def load_frame(store: ObjectStore, version: DatasetVersion) -> pd.DataFrame:
    return read_csv(store.get_bytes(version.storage_key))


def _copy_hashing(source: BinaryIO, dest: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(1 << 20):
        digest.update(chunk)
        dest.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
