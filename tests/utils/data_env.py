"""Data-layer test environment: a migrated database of each selected backend with a store of each kind, plus
helpers to upload through the service layer and to check that storage holds exactly what the database references.

Registered as a plugin by tests/conftest.py, so the fixtures `data_env` and `fast_env` are available everywhere.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from app.contracts.status import UploadStatus
from app.core.config import Settings
from app.db.models import UploadChunk, UploadSession, User
from app.db.session import session_scope, upgrade_schema
from app.services.data import blobs, datasets, upload_complete, upload_parts, upload_storage, uploads
from app.storage import ObjectStore, open_store
from tests.utils.databases import clean_database, reset_engines, selected_backends
from tests.utils.seaweedfs import SeaweedFS

BUCKET = "aip-test"


@dataclass
class DataEnv:
    settings: Settings
    store: ObjectStore
    owner: User
    other: User

    def dataset(self, name: str, user: User | None = None) -> int:
        with session_scope(self.settings.database_url) as session:
            return datasets.create_dataset(session, owner=user or self.owner, name=name).id

    def upload(
        self, dataset_id: int, name: str, data: bytes, *, chunk_size: int = 4096, user: User | None = None
    ) -> int:
        """A whole chunked upload in order, chunks through the API; returns the version id."""
        user = user or self.owner
        upload_id = uploads.create_session(
            self.settings,
            store=self.store,
            mode="api",
            user=user,
            dataset_id=dataset_id,
            file_name=name,
            size_bytes=len(data),
            sha256=sha(data),
            chunk_size=chunk_size,
        )
        for index, chunk in enumerate(split(data, chunk_size)):
            self.put(dataset_id, upload_id, index, chunk, user=user)
        return upload_complete.complete(
            self.settings, self.store, user=user, dataset_id=dataset_id, upload_id=upload_id
        )

    def put(self, dataset_id: int, upload_id: str, index: int, chunk: bytes, *, user: User | None = None) -> None:
        upload_parts.put_chunk(
            self.settings,
            self.store,
            user=user or self.owner,
            dataset_id=dataset_id,
            upload_id=upload_id,
            index=index,
            data=chunk,
            sha256=sha(chunk),
        )

    def stored_keys(self) -> set[str]:
        """Objects, plus S3 multipart uploads anywhere in the store that were neither completed nor aborted (as
        `multipart:KEY:ID`)."""
        keys = set(self.store.list("datasets/")) | set(self.store.list("uploads/"))
        if self.store.multipart is not None:
            keys |= {f"multipart:{key}:{upload}" for key, upload in self.store.multipart.uploads()}
        return keys

    def referenced_keys(self) -> set[str]:
        """Version blobs and states, plus the parts of chunks that open sessions have recorded and, for each open
        session with a multipart upload, that upload at the session's blob key or, once a completion joined it
        and then failed (the session reopened for another try), the joined object under that key."""
        with session_scope(self.settings.database_url) as session:
            keys = blobs.referenced_keys(session)
            rows = session.execute(
                select(UploadChunk.session_id, UploadChunk.index)
                .join(UploadSession, UploadSession.id == UploadChunk.session_id)
                .where(UploadSession.status == UploadStatus.OPEN, UploadSession.multipart_id.is_(None))
            )
            keys |= {upload_storage.part_key(session_id, index) for session_id, index in rows}
            multipart = session.execute(
                select(UploadSession.id, UploadSession.multipart_id, UploadSession.sha256).where(
                    UploadSession.status == UploadStatus.OPEN, UploadSession.multipart_id.is_not(None)
                )
            )
            for upload_id, multipart_id, declared in multipart:
                key = upload_storage.multipart_key(upload_id, declared)
                keys.add(key if self.store.exists(key) else f"multipart:{key}:{multipart_id}")
        return keys

    def assert_no_orphans(self) -> None:
        assert self.stored_keys() == self.referenced_keys()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, chunk_size: int) -> list[bytes]:
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]


def make_env(tmp_path: Path, database_url: str, storage: str, seaweedfs: SeaweedFS | None = None) -> DataEnv:
    s3 = {}
    if storage == "s3":
        assert seaweedfs is not None
        s3 = {
            "storage_url": f"s3://{BUCKET}/data-tests/{uuid.uuid4().hex}",
            "s3_endpoint": seaweedfs.endpoint,
            "s3_access_key": seaweedfs.access_key,
            "s3_secret_key": seaweedfs.secret_key,
        }
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, **s3)
    upgrade_schema(database_url)
    with session_scope(database_url) as session:
        owner, other = User(username="owner", password_hash="x"), User(username="other", password_hash="x")
        session.add_all([owner, other])
        session.flush()
        for user in (owner, other):  # loaded now: the access rules read them after this session closes
            user.roles  # noqa: B018
    return DataEnv(settings=settings, store=open_store(settings), owner=owner, other=other)


def _env(request: pytest.FixtureRequest, tmp_path: Path, backend: str, storage: str) -> Iterator[DataEnv]:
    url = clean_database(backend, tmp_path)
    seaweedfs = request.getfixturevalue("seaweedfs") if storage == "s3" else None
    env = make_env(tmp_path, url, storage, seaweedfs)
    yield env
    reset_engines(url)


_ALL = [
    pytest.param((backend, storage), id=f"{backend}-{storage}")
    for backend in selected_backends()
    for storage in ("local", "s3")
]
_FAST = [pytest.param(("sqlite", "local"), id="sqlite-local"), pytest.param(("sqlite", "s3"), id="sqlite-s3")]


@pytest.fixture(params=_ALL)
def data_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataEnv]:
    """Every selected database backend with the local store and SeaweedFS S3."""
    yield from _env(request, tmp_path, *request.param)


@pytest.fixture(params=_FAST)
def fast_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataEnv]:
    """SQLite with both stores: for checks whose SQL is the same on every backend."""
    yield from _env(request, tmp_path, *request.param)
