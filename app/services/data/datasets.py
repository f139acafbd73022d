"""Datasets and their immutable versions, stored once per content (where: `blobs`).

Identical content uploaded twice (by any route, to any dataset) is stored once and referenced by both rows: a new
version shares the blob of a version with the same sha256 and size. A blob is removed when the last row
referencing it is deleted, so the store holds exactly what the database references.

Database sessions: reads and row-only writes take the caller's `Session`. Adding and deleting versions open their
own transactions (`session_scope`), because rows and stored objects change in an order that never leaves an
orphan: bytes are stored before the row that references them commits, and removed only after the commit that
dropped their last reference.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.core.config import Settings
from app.core.errors import conflict, forbidden, invalid, not_found
from app.db.models import (
    Dataset,
    DatasetVersion,
    ModelVersion,
    PipelineRun,
    QualityReport,
    TrainingJob,
    UploadSession,
    User,
)
from app.db.paging import PageOf, PageRequest, page
from app.db.session import session_scope
from app.runs import lifecycle
from app.runs.kinds import PIPELINE_RUN, QUALITY_REPORT
from app.services import archives
from app.services.data import blobs, formats, upload_storage
from app.services.identity.access import can_read, can_write, readable
from app.services.system import sysconfig
from app.storage import ObjectStore


def create_dataset(session: Session, *, owner: User, name: str, description: str = "") -> Dataset:
    dataset = Dataset(name=name, description=description, owner_id=owner.id)
    session.add(dataset)
    session.flush()
    return dataset


def list_datasets(
    session: Session, *, user: User, request: PageRequest = PageRequest(), name: str | None = None
) -> PageOf[Dataset]:
    """The datasets the user may read, with their versions; `name`: whose name contains it."""
    query = select(Dataset).where(readable(user, Dataset)).options(selectinload(Dataset.versions))
    if name:
        query = query.where(Dataset.name.contains(name, autoescape=True))
    sortable = {"id": Dataset.id, "name": Dataset.name, "created_at": Dataset.created_at}
    return page(session, query, request, sortable=sortable, default_sort="id", tiebreak=Dataset.id)


def list_versions(session: Session, *, user: User, dataset_id: int, request: PageRequest) -> PageOf[DatasetVersion]:
    get_dataset(session, user=user, dataset_id=dataset_id)
    query = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
    sortable = {"id": DatasetVersion.id, "version": DatasetVersion.version, "created_at": DatasetVersion.created_at}
    return page(session, query, request, sortable=sortable, default_sort="version", tiebreak=DatasetVersion.id)


def get_dataset(session: Session, *, user: User, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or not can_read(user, dataset):
        raise not_found("Dataset", dataset_id)
    return dataset


def writable_dataset(session: Session, *, user: User, dataset_id: int) -> Dataset:
    dataset = get_dataset(session, user=user, dataset_id=dataset_id)
    if not can_write(user, dataset):
        raise forbidden(f"Dataset {dataset_id} is shared with you read-only; only its owner can change it.")
    return dataset


def get_version(session: Session, *, user: User, version_id: int) -> DatasetVersion:
    version = session.get(DatasetVersion, version_id)
    if version is None or not can_read(user, version.dataset):
        raise not_found("Dataset version", version_id)
    return version


def rows_of_version_or_dataset(
    session: Session,
    *,
    user: User,
    row_type: Any,
    version_column: Any,
    version_id: int | None,
    dataset_id: int | None,
    status: str | None,
    request: PageRequest = PageRequest(),
) -> PageOf[Any]:
    """Rows (quality reports, pipeline runs) of one version, or of any version of one dataset, newest first; 404
    when the user cannot see that version or dataset."""
    query = select(row_type)
    if version_id is not None:
        get_version(session, user=user, version_id=version_id)
        query = query.where(version_column == version_id)
    elif dataset_id is not None:
        get_dataset(session, user=user, dataset_id=dataset_id)
        query = query.join(DatasetVersion, DatasetVersion.id == version_column).where(
            DatasetVersion.dataset_id == dataset_id
        )
    else:
        raise ValueError("needs version_id or dataset_id")
    if status:
        query = query.where(row_type.status == status)
    sortable = {"id": row_type.id, "created_at": row_type.created_at, "status": row_type.status}
    return page(session, query, request, sortable=sortable, default_sort="-id", tiebreak=row_type.id)


def used_bytes(session: Session, *, user: User) -> int:
    """Bytes counted against the user's quota: their versions plus the declared size of their open uploads."""
    versions = session.scalar(
        select(func.coalesce(func.sum(DatasetVersion.size_bytes), 0))
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(Dataset.owner_id == user.id)
    )
    uploads = session.scalar(
        select(func.coalesce(func.sum(UploadSession.size_bytes), 0)).where(
            UploadSession.owner_id == user.id, UploadSession.status == "OPEN"
        )
    )
    return int(versions or 0) + int(uploads or 0)


def check_size(settings: Settings, session: Session, *, user: User, size: int, file_name: str) -> None:
    if size <= 0:
        raise invalid(f"The file {file_name!r} is empty.")
    limit = sysconfig.get(session, settings, "upload.max_file_bytes")
    if size > limit:
        raise invalid(
            f"The file {file_name!r} has {size} bytes; the limit is {limit} (system setting upload.max_file_bytes). "
            "Split it or ask an admin to raise the limit."
        )
    used = used_bytes(session, user=user)
    quota = sysconfig.get(session, settings, "quota.user_storage_bytes")
    if used + size > quota:
        raise invalid(
            f"Storing {size} more bytes would exceed your quota: {used} of {quota} bytes are used (system setting "
            "quota.user_storage_bytes). Delete versions you no longer need."
        )


def add_version(
    settings: Settings,
    store: ObjectStore,
    *,
    user: User,
    dataset_id: int,
    file_name: str,
    source: BinaryIO,
) -> int:
    """Single-request upload: spools the body to disk, then records it like a completed chunked upload."""
    name = formats.safe_file_name(file_name)
    fmt = formats.detect(name)
    with tempfile.TemporaryDirectory(prefix="aip-upload-") as tmp:
        path = Path(tmp) / "data"
        digest = hashlib.sha256()
        size = 0
        with path.open("wb") as out:
            while block := source.read(1 << 20):
                digest.update(block)
                out.write(block)
                size += len(block)
        with session_scope(settings.database_url) as session:
            writable_dataset(session, user=user, dataset_id=dataset_id)
            check_size(settings, session, user=user, size=size, file_name=name)
        return record_version(
            settings, store, dataset_id=dataset_id, file_name=name, fmt=fmt, path=path, sha256=digest.hexdigest()
        )


def record_version(
    settings: Settings,
    store: ObjectStore,
    *,
    dataset_id: int,
    file_name: str,
    fmt: str,
    path: Path,
    sha256: str,
    parent_id: int | None = None,
    pipeline: dict[str, Any] | None = None,
    state_key: str | None = None,
    on_commit: Any = None,
    inspected: formats.Inspected | None = None,
    stored_key: str | None = None,
) -> int:
    """Checks the file is readable as `fmt`, stores its bytes once and adds a version row.

    `on_commit(session, version)` runs inside the version's transaction (e.g. to close the upload session with it).
    `inspected`: the format check's outcome, where the caller ran it already (e.g. while the bytes streamed in).
    `stored_key`: the (verified) bytes are in the store under this key already, e.g. joined there by S3: the
    version references it, unless a version holds the same content already (then that one's blob is shared and
    `stored_key` removed). On failure the caller removes `stored_key`.
    On any failure nothing else is left behind: no row, and no blob that no row references.
    """
    num_rows, columns, profile = inspected or formats.inspect(path, fmt, archives.image_limits(settings))
    size = path.stat().st_size
    with session_scope(settings.database_url) as session:
        key = blobs.stored_content(session, sha256=sha256, size=size) or stored_key
    wrote = False
    if key is None:
        key = blobs.blob_key(sha256)
        if not store.exists(key):
            with path.open("rb") as f:
                store.put_file(key, f, size)
            wrote = True
    try:
        for attempt in range(_NUMBER_ATTEMPTS):
            try:
                version_id = _add_version_row(
                    settings,
                    dataset_id=dataset_id,
                    file_name=file_name,
                    format=fmt,
                    key=key,
                    size=size,
                    sha256=sha256,
                    num_rows=num_rows,
                    columns=columns,
                    parent_id=parent_id,
                    pipeline=pipeline,
                    state_key=state_key,
                    profile=profile,
                    on_commit=on_commit,
                )
                break
            except _NumberTaken as e:
                # Two uploads to one dataset at once read the same highest number: the later insert loses the
                # unique (dataset, version) race. Take the next number rather than answer 409.
                if attempt == _NUMBER_ATTEMPTS - 1:
                    raise conflict(
                        f"Dataset {dataset_id} changed while adding the version (deleted, or many uploads at once): "
                        "retry."
                    ) from e
    except BaseException:
        if wrote:
            with session_scope(settings.database_url) as session:
                blobs.delete_unreferenced(session, store, [key])
        raise
    if stored_key is not None and key != stored_key:  # the content was stored already: keep one copy
        store.delete(stored_key)
    # A concurrent delete of the last other reference may have removed the shared blob: put it back. Still open:
    # that delete's count-then-remove can straddle this check (it counts before our commit, removes after this
    # check); closing it needs one row per blob that both sides lock.
    if not store.exists(key):
        with path.open("rb") as f:
            store.put_file(key, f, size)
    return version_id


_NUMBER_ATTEMPTS = 5


class _NumberTaken(Exception):
    """Another version took the number between reading the highest one and inserting."""


def _add_version_row(settings: Settings, *, dataset_id: int, key: str, size: int, on_commit: Any, **fields: Any) -> int:
    with session_scope(settings.database_url) as session:
        # Versions of one dataset are numbered one at a time: the dataset's row lock (PostgreSQL, MariaDB) makes a
        # concurrent upload wait, then read the number the other took. SQLite has one writer at a time instead, and
        # the caller's retry covers the read that comes before it.
        session.execute(select(Dataset.id).where(Dataset.id == dataset_id).with_for_update())
        number = (
            session.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == dataset_id)) or 0
        ) + 1
        version = DatasetVersion(dataset_id=dataset_id, version=number, storage_key=key, size_bytes=size, **fields)
        session.add(version)
        try:
            session.flush()
        except IntegrityError as e:
            raise _NumberTaken(number) from e
        if on_commit is not None:
            on_commit(session, version)
        return version.id


def find_readable_content(session: Session, *, user: User, sha256: str, size: int) -> DatasetVersion | None:
    """A version with these exact bytes that `user` may read (so uploading it again can be skipped)."""
    rows = session.scalars(
        select(DatasetVersion)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(DatasetVersion.sha256 == sha256, DatasetVersion.size_bytes == size, readable(user, Dataset))
        .limit(1)
    )
    return rows.first()


def delete_version(settings: Settings, store: ObjectStore, *, user: User, version_id: int) -> None:
    with session_scope(settings.database_url) as session:
        version = get_version(session, user=user, version_id=version_id)
        writable_dataset(session, user=user, dataset_id=version.dataset_id)
        _check_unused(session, [version.id])
        logs = _forget_runs(session, [version.id])
        keys = [version.storage_key, *([version.state_key] if version.state_key else [])]
        session.delete(version)
    blobs.remove_unreferenced(settings, store, keys)
    for key in logs:
        store.delete(key)


def _forget_runs(session: Session, version_ids: list[int]) -> list[str]:
    """Forgets the history of the quality reports and pipeline runs that go with the versions (by foreign-key
    cascade); returns the keys of their kept logs, to delete once the rows are gone."""
    logs = []
    for kind, column in ((QUALITY_REPORT, QualityReport.version_id), (PIPELINE_RUN, PipelineRun.input_version_id)):
        rows = session.execute(select(kind.model.id, kind.model.logs_key).where(column.in_(version_ids))).all()
        lifecycle.forget(session, kind, [run_id for run_id, _ in rows])
        logs += [key for _, key in rows if key]
    return logs


def delete_dataset(settings: Settings, store: ObjectStore, *, user: User, dataset_id: int) -> None:
    """Deletes the dataset, its versions and open uploads, and every stored object only they referenced."""
    with session_scope(settings.database_url) as session:
        dataset = writable_dataset(session, user=user, dataset_id=dataset_id)
        _check_unused(session, [v.id for v in dataset.versions])
        logs = _forget_runs(session, [v.id for v in dataset.versions])
        keys = [k for v in dataset.versions for k in (v.storage_key, v.state_key) if k]
        open_uploads = session.execute(
            select(UploadSession.id, UploadSession.multipart_id, UploadSession.sha256).where(
                UploadSession.dataset_id == dataset_id
            )
        ).all()
        session.delete(dataset)  # versions by ORM cascade; upload sessions, chunks, reports by FK cascade
    for upload_id, multipart_id, sha256 in open_uploads:
        upload_storage.discard_stored(settings, store, upload_id, multipart_id, sha256)
    blobs.remove_unreferenced(settings, store, keys)
    for key in logs:
        store.delete(key)


def _check_unused(session: Session, version_ids: list[int]) -> None:
    if not version_ids:
        return
    jobs = list(session.scalars(select(TrainingJob.id).where(TrainingJob.dataset_version_id.in_(version_ids))))
    models = list(session.scalars(select(ModelVersion.id).where(ModelVersion.dataset_version_id.in_(version_ids))))
    if jobs or models:
        raise conflict(
            f"Dataset versions {version_ids} are used by training jobs {jobs} and model versions {models}; "
            "delete those first (lineage must not point at missing data)."
        )


def download_to(store: ObjectStore, version: DatasetVersion, dest: Path) -> Path:
    store.download(version.storage_key, dest)
    return dest


def load_frame(store: ObjectStore, version: DatasetVersion) -> pd.DataFrame:
    """The version as a pandas frame (tabular formats only)."""
    with tempfile.TemporaryDirectory(prefix="aip-read-") as tmp:
        path = download_to(store, version, Path(tmp) / "data")
        return formats.read_frame(path, version.format)
