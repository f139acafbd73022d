"""Resumable chunked uploads: a session declares name, size, sha256 and chunk size; chunks (each with its own
sha256) arrive in any order and in parallel; completion joins them, verifies the whole-file hash and records an
immutable dataset version, stored once per content.

Two modes, one set of semantics (which chunks are stored, resume, abort, expiry, completion checks):
- api: chunks come through the API. On S3 storage with chunks of at least 5 MiB (S3's part minimum) the platform
  sends each on as a part of the session's S3 multipart upload; otherwise they are stored as objects under
  `uploads/<session id>/` and concatenated at completion.
- direct (S3 storage, chunks of at least 5 MiB): the client asks for a presigned URL per chunk, whose signature
  binds the chunk's sha256 and length (S3 refuses other bytes), PUTs the chunk straight to S3 as a part of the
  session's multipart upload and reports it; the platform checks the part's size and ETag with S3 before recording
  it.

A session's multipart upload is started at the upload's own blob key (`datasets/blobs/xx/<sha256>.<upload id>`,
from the declared sha256), so completing it puts the file where its version will reference it: no copy follows.
Completion joins exactly the recorded parts (S3 checks their ETags and checksums). Chunks that came through this
process were hashed and format-checked in order as they arrived (`upload_spool`): completion uses that. Otherwise
it reads the file back once, in order: the same pass hashes it, writes the scratch file and feeds the format check
(CSV/JSON lines are parsed as they stream in). Unverified bytes may sit under that key because it holds this
upload's id: no other upload can share it and no row references it until the verified version is recorded.
Content stored already is not kept twice: the version shares that blob and the joined object is removed.

Parts live under `uploads/<session id>/` or in the multipart upload until the session completes, is aborted or
expires; every path that ends a session without a version removes them, aborts the multipart upload and removes
a joined object no version references. A part is written before its row: a part whose session ended meanwhile is
removed by the writer itself (it re-checks the session under a row lock), or refused by S3 once the multipart
upload is aborted, so no sequence of requests leaves one behind.

This module holds the sessions (open, read, abort, expire); `upload_parts` receives the chunks (through the API or
direct to storage), `upload_complete` joins and verifies them, `upload_storage` says where their bytes wait.
Database sessions: functions that only read or write rows take the caller's `Session`. Those that also call the
storage open their own transactions (`session_scope`), because the order of row and object writes is what keeps
the store free of orphans (a row commits only once its bytes exist; bytes go only after their row has ended), and
a caller's transaction would commit only after the storage calls.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.contracts.status import UploadStatus
from app.core.config import Settings
from app.core.errors import conflict, invalid, not_found
from app.db.models import DatasetVersion, UploadChunk, UploadSession, User, utcnow
from app.db.session import session_scope
from app.services.data import datasets, formats, upload_spool
from app.services.data.upload_storage import discard_stored, multipart_key
from app.services.identity.access import can_write
from app.storage import ObjectStore

MIN_CHUNK_BYTES = 1024
MAX_CHUNKS = 10_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadMode(StrEnum):
    API = "api"
    DIRECT = "direct"


def _parts_fit(store: ObjectStore | None, num_chunks: int, chunk_size: int) -> bool:
    """The store has multipart uploads and takes these chunks as parts (every part but the last has a minimum)."""
    multipart = store.multipart if store is not None else None
    return multipart is not None and (num_chunks == 1 or chunk_size >= multipart.min_part_bytes)


def _choose_mode(
    settings: Settings, store: ObjectStore | None, wanted: str, num_chunks: int, chunk_size: int
) -> UploadMode:
    if wanted not in ("auto", *UploadMode):
        raise invalid(f"Unknown upload mode {wanted!r}: use 'auto', 'api' or 'direct'.")
    multipart = store.multipart if store is not None else None
    possible = multipart is not None and settings.upload_direct
    parts_fit = _parts_fit(store, num_chunks, chunk_size)
    if wanted == UploadMode.DIRECT:
        if multipart is None or not possible:
            raise invalid(
                "Direct uploads need S3 storage (AIP_STORAGE_URL=s3://...) with AIP_UPLOAD_DIRECT on; "
                "use mode 'api' or 'auto'."
            )
        if not parts_fit:
            raise invalid(
                f"chunk_size {chunk_size} is too small for a direct upload: the storage needs parts of at least "
                f"{multipart.min_part_bytes} bytes except the last; use a larger chunk_size or mode 'api'."
            )
    if wanted != UploadMode.API and possible and parts_fit:
        return UploadMode.DIRECT
    return UploadMode.API


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
    mode: str = "auto",
    store: ObjectStore | None = None,
) -> str:
    """Opens an upload session, or returns the open one for the same file (so a re-run resumes it, in the mode
    it was opened with). `mode`: "direct" (S3 `store` only), "api", or "auto" (direct where possible)."""
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
    chosen = _choose_mode(settings, store, mode, num_chunks, chunk_size)
    started: tuple[str, str] | None = None  # a multipart upload begun for a new session, until its row commits
    try:
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
            upload_id, multipart_id = secrets.token_hex(16), None
            # Direct sessions, and api ones whose chunks S3 takes as parts, assemble the file in S3.
            if store is not None and store.multipart is not None and _parts_fit(store, num_chunks, chunk_size):
                multipart_id = store.multipart.create(multipart_key(upload_id, sha256))
                started = (multipart_key(upload_id, sha256), multipart_id)
            session.add(
                UploadSession(
                    id=upload_id,
                    mode=chosen,
                    multipart_id=multipart_id,
                    dataset_id=dataset_id,
                    owner_id=user.id,
                    file_name=name,
                    size_bytes=size_bytes,
                    sha256=sha256,
                    chunk_size=chunk_size,
                    num_chunks=num_chunks,
                    status=UploadStatus.OPEN,
                )
            )
            return upload_id
    except BaseException:
        if started is not None and store is not None and store.multipart is not None:
            store.multipart.abort(*started)  # the row did not commit: nothing references the multipart upload
        raise


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


def locked(session: Session, upload_id: str) -> UploadSession | None:
    query = select(UploadSession).where(UploadSession.id == upload_id).with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def require_open(upload: UploadSession) -> None:
    if upload.status == UploadStatus.COMPLETING:
        raise conflict(f"Upload {upload.id} is being completed; ask for its status again in a moment.")
    if upload.status != UploadStatus.OPEN:
        raise conflict(
            f"Upload {upload.id} is {upload.status}"
            + (f" ({upload.message})" if upload.message else "")
            + "; start a new upload session."
        )


def check_index(upload: UploadSession, index: int) -> None:
    if not 0 <= index < upload.num_chunks:
        raise invalid(f"Chunk index {index} is out of range: this upload has chunks 0 to {upload.num_chunks - 1}.")


def unchanged(session: Session, upload_id: str, index: int, sha256: str) -> bool:
    """True when the chunk is stored already with this content (sending it again is a no-op)."""
    stored = session.get(UploadChunk, (upload_id, index))
    if stored is not None and stored.sha256 != sha256:
        raise conflict(f"Chunk {index} is already stored with other content (sha256 {stored.sha256}).")
    return stored is not None


def abort(settings: Settings, store: ObjectStore, *, user: User, dataset_id: int, upload_id: str) -> None:
    with session_scope(settings.database_url) as session:
        upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
        if upload.status == UploadStatus.COMPLETED:
            raise conflict(f"Upload {upload_id} is complete (version {upload.version_id}); delete the version instead.")
    end_session(settings, store, upload_id, UploadStatus.ABORTED, "Aborted by the user.")


def end_session(settings: Settings, store: ObjectStore, upload_id: str, status: UploadStatus, message: str) -> None:
    """Ends a session that is not complete: the row records why, the chunk rows and stored parts go."""
    with session_scope(settings.database_url) as session:
        upload = locked(session, upload_id)
        if upload is None or upload.status == UploadStatus.COMPLETED:
            return
        upload.status, upload.message, upload.updated_at = status, message[:1000], utcnow()
        multipart_id, sha256 = upload.multipart_id, upload.sha256
        session.execute(delete(UploadChunk).where(UploadChunk.session_id == upload_id))
    upload_spool.drop(upload_id)
    discard_stored(settings, store, upload_id, multipart_id, sha256)


def expire_stale(settings: Settings, store: ObjectStore, *, now: dt.datetime | None = None) -> list[str]:
    """Ends sessions idle for longer than AIP_UPLOAD_SESSION_TTL_S (run by the reconcile loop)."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=settings.upload_session_ttl_s)
    upload_spool.drop_idle(settings.upload_session_ttl_s)
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
        end_session(
            settings,
            store,
            upload_id,
            UploadStatus.EXPIRED,
            f"Idle for more than {settings.upload_session_ttl_s:.0f} s.",
        )
    return stale
