"""Resumable chunked uploads: a session declares name, size, sha256 and chunk size; chunks (each with its own
sha256) arrive in any order and in parallel; completion composes them, verifies the whole-file hash and records an
immutable, content-addressed dataset version.

Parts live under `uploads/<session id>/` until the session completes, is aborted or expires; every path that ends
a session removes them. A part is written before its row: a part whose session ended meanwhile is removed by the
writer itself (it re-checks the session under a row lock), so no sequence of requests leaves one behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
import tempfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, invalid, not_found
from app.db.models import DatasetVersion, UploadChunk, UploadSession, User, utcnow
from app.db.session import session_scope
from app.services import datasets, formats
from app.services.access import can_write
from app.storage import ObjectStore

MIN_CHUNK_BYTES = 1024
MAX_CHUNKS = 10_000
S3_MIN_PART_BYTES = 5 << 20
COMPOSE_PREFETCH = 4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadStatus(StrEnum):
    OPEN = "OPEN"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"


def part_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def part_key(upload_id: str, index: int) -> str:
    return f"{part_prefix(upload_id)}{index:06d}"


def check_sha256(value: str, what: str) -> str:
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise invalid(f"The {what} must be a sha256 hex digest (64 hex characters); got {value[:80]!r}.")
    return value


def chunk_length(upload: UploadSession, index: int) -> int:
    if index == upload.num_chunks - 1:
        return upload.size_bytes - upload.chunk_size * (upload.num_chunks - 1)
    return upload.chunk_size


def create_session(
    settings: Settings,
    *,
    user: User,
    dataset_id: int,
    file_name: str,
    size_bytes: int,
    sha256: str,
    chunk_size: int,
) -> str:
    """Opens an upload session, or returns the open one for the same file (so a re-run resumes it)."""
    name = formats.safe_file_name(file_name)
    formats.detect(name)
    sha256 = check_sha256(sha256, "file's sha256")
    if not MIN_CHUNK_BYTES <= chunk_size <= settings.upload_max_chunk_bytes:
        raise invalid(
            f"chunk_size {chunk_size} is out of range: use {MIN_CHUNK_BYTES} to {settings.upload_max_chunk_bytes} "
            "bytes (AIP_UPLOAD_MAX_CHUNK_BYTES)."
        )
    num_chunks = max(1, math.ceil(size_bytes / chunk_size))
    if num_chunks > MAX_CHUNKS:
        raise invalid(f"{num_chunks} chunks is too many (at most {MAX_CHUNKS}); use a larger chunk_size.")
    with session_scope(settings.database_url) as session:
        datasets.writable_dataset(session, user=user, dataset_id=dataset_id)
        existing = session.scalar(
            select(UploadSession).where(
                UploadSession.dataset_id == dataset_id,
                UploadSession.owner_id == user.id,
                UploadSession.file_name == name,
                UploadSession.sha256 == sha256,
                UploadSession.size_bytes == size_bytes,
                UploadSession.chunk_size == chunk_size,
                UploadSession.status == UploadStatus.OPEN,
            )
        )
        if existing is not None:
            existing.updated_at = utcnow()
            return existing.id
        datasets.check_size(settings, session, user=user, size=size_bytes, file_name=name)
        upload = UploadSession(
            id=secrets.token_hex(16),
            dataset_id=dataset_id,
            owner_id=user.id,
            file_name=name,
            size_bytes=size_bytes,
            sha256=sha256,
            chunk_size=chunk_size,
            num_chunks=num_chunks,
            status=UploadStatus.OPEN,
        )
        session.add(upload)
        return upload.id


def get_session(session: Session, *, user: User, upload_id: str, dataset_id: int | None = None) -> UploadSession:
    upload = session.get(UploadSession, upload_id)
    # A session is its uploader's alone: shares of the dataset do not extend to it.
    if upload is None or not can_write(user, upload) or (dataset_id is not None and upload.dataset_id != dataset_id):
        raise not_found("Upload session", upload_id)
    return upload


def received(session: Session, upload_id: str) -> list[int]:
    return list(
        session.scalars(
            select(UploadChunk.index).where(UploadChunk.session_id == upload_id).order_by(UploadChunk.index)
        )
    )


def known_content(session: Session, *, user: User, upload: UploadSession) -> DatasetVersion | None:
    """A readable version with exactly the declared bytes: the client need not send any chunk."""
    return datasets.find_readable_content(session, user=user, sha256=upload.sha256, size=upload.size_bytes)


def _locked(session: Session, upload_id: str) -> UploadSession | None:
    query = select(UploadSession).where(UploadSession.id == upload_id).with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def _require_open(upload: UploadSession) -> None:
    if upload.status == UploadStatus.COMPLETING:
        raise conflict(f"Upload {upload.id} is being completed; ask for its status again in a moment.")
    if upload.status != UploadStatus.OPEN:
        raise conflict(
            f"Upload {upload.id} is {upload.status}"
            + (f" ({upload.message})" if upload.message else "")
            + "; start a new upload session."
        )


def put_chunk(
    settings: Settings,
    store: ObjectStore,
    *,
    user: User,
    dataset_id: int,
    upload_id: str,
    index: int,
    data: bytes,
    sha256: str,
) -> None:
    """Stores one chunk after checking its range, length and checksum. Sending a stored chunk again is a no-op."""
    sha256 = check_sha256(sha256, "chunk's sha256 (header X-Chunk-Sha256)")
    with session_scope(settings.database_url) as session:
        upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
        _require_open(upload)
        if not 0 <= index < upload.num_chunks:
            raise invalid(f"Chunk index {index} is out of range: this upload has chunks 0 to {upload.num_chunks - 1}.")
        expected = chunk_length(upload, index)
        if len(data) != expected:
            raise invalid(f"Chunk {index} has {len(data)} bytes; it must have {expected} (chunk_size and file size).")
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise invalid(f"Chunk {index} does not match its checksum: its sha256 is {actual}, you sent {sha256}.")
        stored = session.get(UploadChunk, (upload_id, index))
        if stored is not None:
            if stored.sha256 != sha256:
                raise conflict(f"Chunk {index} is already stored with other content (sha256 {stored.sha256}).")
            return
    store.put_bytes(part_key(upload_id, index), data)
    with session_scope(settings.database_url) as session:
        upload = _locked(session, upload_id)
        if upload is None or upload.status != UploadStatus.OPEN:
            store.delete(part_key(upload_id, index))  # the session ended while the part was written
            if upload is None:
                raise not_found("Upload session", upload_id)
            _require_open(upload)
        if session.get(UploadChunk, (upload_id, index)) is None:
            session.add(UploadChunk(session_id=upload_id, index=index, size_bytes=len(data), sha256=sha256))
        upload.updated_at = utcnow()


def complete(settings: Settings, store: ObjectStore, *, user: User, dataset_id: int, upload_id: str) -> int:
    """Composes the parts, verifies size and sha256, records the version; returns its id. Idempotent."""
    with session_scope(settings.database_url) as session:
        upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
        upload = _locked(session, upload_id)
        if upload is None:  # its dataset was deleted meanwhile
            raise not_found("Upload session", upload_id)
        if upload.status == UploadStatus.COMPLETED and upload.version_id is not None:
            return upload.version_id
        _require_open(upload)
        have = set(received(session, upload_id))
        missing = [i for i in range(upload.num_chunks) if i not in have]
        reuse = known_content(session, user=user, upload=upload) if missing else None
        if missing and reuse is None:
            shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
            raise invalid(f"Upload {upload_id} lacks {len(missing)} of {upload.num_chunks} chunks: {shown}.")
        name, fmt, declared, size = upload.file_name, formats.detect(upload.file_name), upload.sha256, upload.size_bytes
        reuse_key = reuse.storage_key if reuse is not None else None
        num_chunks, chunk_size = upload.num_chunks, upload.chunk_size
        # Claimed by a conditional UPDATE, so two concurrent completions cannot both proceed (SQLite has no row
        # locks; elsewhere the lock above already serialises them).
        claimed = session.execute(
            update(UploadSession)
            .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.OPEN)
            .values(status=UploadStatus.COMPLETING, updated_at=utcnow())
        )
        if claimed.rowcount != 1:
            raise conflict(f"Upload {upload_id} is being completed; ask for its status again in a moment.")
    try:
        with tempfile.TemporaryDirectory(prefix="aip-compose-") as tmp:
            path = Path(tmp) / "data"
            if reuse_key is not None:
                store.download(reuse_key, path)
                digest = _sha256_file(path)
            else:
                digest = _compose(store, upload_id, num_chunks, path)
            if path.stat().st_size != size or digest != declared:
                raise invalid(
                    f"The composed file has {path.stat().st_size} bytes and sha256 {digest}, but the upload declared "
                    f"{size} bytes and sha256 {declared}; the session was aborted. Check the file and upload again."
                )

            def close(session: Session, version: DatasetVersion) -> None:
                done = session.get_one(UploadSession, upload_id)
                done.status, done.version_id, done.updated_at = UploadStatus.COMPLETED, version.id, utcnow()
                session.execute(delete(UploadChunk).where(UploadChunk.session_id == upload_id))

            version_id = datasets.record_version(
                settings,
                store,
                dataset_id=dataset_id,
                file_name=name,
                fmt=fmt,
                path=path,
                sha256=digest,
                on_commit=close,
                place_blob=lambda key: _server_side_compose(store, upload_id, num_chunks, chunk_size, key),
            )
    except _LostPart as e:  # storage lost a part (e.g. restored from backup): forget it, so the client resends it
        with session_scope(settings.database_url) as session:
            session.execute(
                delete(UploadChunk).where(UploadChunk.session_id == upload_id, UploadChunk.index == e.index)
            )
        _reopen(settings, upload_id)
        raise conflict(f"Chunk {e.index} of upload {upload_id} is missing from storage; send it again.") from e
    except AipError as e:
        if e.code is ErrorCode.INVALID_INPUT:  # the bytes themselves are wrong: this session cannot succeed
            _end(settings, store, upload_id, UploadStatus.ABORTED, e.message)
        else:
            _reopen(settings, upload_id)
        raise
    except BaseException:
        _reopen(settings, upload_id)  # e.g. storage unreachable: the client may call complete again
        raise
    store.delete_prefix(part_prefix(upload_id))
    return version_id


class _LostPart(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _reopen(settings: Settings, upload_id: str) -> None:
    with session_scope(settings.database_url) as session:
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.COMPLETING)
            .values(status=UploadStatus.OPEN, updated_at=utcnow())
        )


def _server_side_compose(store: ObjectStore, upload_id: str, num_chunks: int, chunk_size: int, key: str) -> bool:
    """On S3, composes the parts into `key` inside the server, so the file's bytes cross the network once less.
    S3 wants every part but the last to have at least 5 MiB; smaller chunks are stored from the composed file."""
    from app.storage.s3 import S3Store

    if not isinstance(store, S3Store) or (num_chunks > 1 and chunk_size < S3_MIN_PART_BYTES):
        return False
    from minio.commonconfig import ComposeSource

    # The store's object names (its prefix applied), as its own methods use them.
    sources = [ComposeSource(store.bucket, store._name(part_key(upload_id, i))) for i in range(num_chunks)]
    store.client.compose_object(store.bucket, store._name(key), sources)
    return True


def _compose(store: ObjectStore, upload_id: str, num_chunks: int, dest: Path) -> str:
    """Concatenates the parts in order into `dest`, hashing as it goes. A few parts are fetched ahead in parallel
    (bounded, so memory stays a few chunks whatever the file size)."""
    digest = hashlib.sha256()

    def fetch(index: int) -> bytes:
        try:
            return store.get_bytes(part_key(upload_id, index))
        except KeyError as e:
            raise _LostPart(index) from e

    with dest.open("wb") as out, ThreadPoolExecutor(COMPOSE_PREFETCH) as pool:
        pending = deque(pool.submit(fetch, i) for i in range(min(COMPOSE_PREFETCH, num_chunks)))
        for index in range(num_chunks):
            data = pending.popleft().result()
            if index + COMPOSE_PREFETCH < num_chunks:
                pending.append(pool.submit(fetch, index + COMPOSE_PREFETCH))
            digest.update(data)
            out.write(data)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def abort(settings: Settings, store: ObjectStore, *, user: User, dataset_id: int, upload_id: str) -> None:
    with session_scope(settings.database_url) as session:
        upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
        if upload.status == UploadStatus.COMPLETED:
            raise conflict(f"Upload {upload_id} is complete (version {upload.version_id}); delete the version instead.")
    _end(settings, store, upload_id, UploadStatus.ABORTED, "Aborted by the user.")


def _end(settings: Settings, store: ObjectStore, upload_id: str, status: UploadStatus, message: str) -> None:
    """Ends a session that is not complete: the row records why, the chunk rows and stored parts go."""
    with session_scope(settings.database_url) as session:
        upload = _locked(session, upload_id)
        if upload is None or upload.status == UploadStatus.COMPLETED:
            return
        upload.status, upload.message, upload.updated_at = status, message[:1000], utcnow()
        session.execute(delete(UploadChunk).where(UploadChunk.session_id == upload_id))
    store.delete_prefix(part_prefix(upload_id))


def expire_stale(settings: Settings, store: ObjectStore, *, now: dt.datetime | None = None) -> list[str]:
    """Ends sessions idle for longer than AIP_UPLOAD_SESSION_TTL_S (run by the reconcile loop)."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=settings.upload_session_ttl_s)
    with session_scope(settings.database_url) as session:
        stale = list(
            session.scalars(
                select(UploadSession.id).where(
                    UploadSession.status.in_([UploadStatus.OPEN, UploadStatus.COMPLETING]),
                    UploadSession.updated_at < cutoff,
                )
            )
        )
    for upload_id in stale:
        _end(
            settings,
            store,
            upload_id,
            UploadStatus.EXPIRED,
            f"Idle for more than {settings.upload_session_ttl_s:.0f} s.",
        )
    return stale
