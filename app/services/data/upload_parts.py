"""Receiving an upload's chunks: through the API (stored as objects, or sent on as parts of the session's
multipart upload), or straight to storage through presigned part URLs that the client then reports.

Each chunk's bytes are written before its row: `record_chunk` re-checks the session under a row lock and drops
the bytes of a session that ended meanwhile (a part is refused by storage once its multipart upload is aborted).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import conflict, invalid, not_found
from app.db.models import UploadChunk, UploadSession, User, utcnow
from app.db.session import session_scope
from app.services.data import formats, upload_spool
from app.services.data.upload_storage import multipart_key, part_key
from app.services.data.uploads import (
    UploadMode,
    UploadStatus,
    check_index,
    check_sha256,
    chunk_length,
    get_session,
    locked,
    require_open,
    unchanged,
)
from app.storage import ObjectStore
from app.storage.base import Multipart, UploadGone, sha256_b64


def _require_direct(upload: UploadSession) -> None:
    if upload.mode != UploadMode.DIRECT:
        raise invalid(
            f"Upload {upload.id} sends its chunks through the API (mode {upload.mode}): "
            f"PUT them to .../upload/{upload.id}/chunk/{{index}}."
        )


def _multipart(store: ObjectStore, upload: UploadSession) -> tuple[Multipart, str]:
    """The store's multipart capability and the session's multipart upload id."""
    if store.multipart is None or upload.multipart_id is None:
        raise conflict(f"Upload {upload.id} is not a direct upload on this storage; start a new upload session.")
    return store.multipart, upload.multipart_id


def record_chunk(
    settings: Settings, store: ObjectStore, upload_id: str, index: int, size: int, sha256: str, etag: str | None
) -> None:
    """Adds the row of a chunk whose bytes are stored; if the session ended meanwhile, drops those bytes."""
    with session_scope(settings.database_url) as session:
        upload = locked(session, upload_id)
        if upload is None or upload.status != UploadStatus.OPEN:
            if etag is None:
                store.delete(part_key(upload_id, index))
            # A direct part is dropped with its multipart upload, which ending the session aborted.
            if upload is None:
                raise not_found("Upload session", upload_id)
            require_open(upload)
        if session.get(UploadChunk, (upload_id, index)) is None:
            session.add(UploadChunk(session_id=upload_id, index=index, size_bytes=size, sha256=sha256, etag=etag))
        upload.updated_at = utcnow()


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
    """Stores one chunk after checking its range, length and checksum. Sending a stored chunk again is a no-op.
    In a session with a multipart upload (direct, or api with S3-sized chunks) the platform sends it on as a part."""
    sha256 = check_sha256(sha256, "chunk's sha256 (header X-Chunk-Sha256)")
    with session_scope(settings.database_url) as session:
        upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
        require_open(upload)
        check_index(upload, index)
        expected = chunk_length(upload, index)
        if len(data) != expected:
            raise invalid(f"Chunk {index} has {len(data)} bytes; it must have {expected} (chunk_size and file size).")
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise invalid(f"Chunk {index} does not match its checksum: its sha256 is {actual}, you sent {sha256}.")
        if unchanged(session, upload_id, index, sha256):
            return
        direct = _multipart(store, upload) if upload.multipart_id is not None else None
        key = multipart_key(upload_id, upload.sha256)
        fmt, size, chunk_size = formats.detect(upload.file_name), upload.size_bytes, upload.chunk_size
    etag = None
    if direct is not None:
        multipart, multipart_id = direct
        try:
            etag = multipart.upload_part(key, multipart_id, index + 1, data, sha256)
        except UploadGone as e:  # the session ended while the part was sent
            raise conflict(f"Upload {upload_id} has ended; start a new upload session.") from e
    else:
        store.put_bytes(part_key(upload_id, index), data)
    record_chunk(settings, store, upload_id, index, len(data), sha256, etag)
    upload_spool.receive(upload_id, fmt=fmt, size=size, chunk_size=chunk_size, index=index, data=data, sha256=sha256)


def part_url(
    session: Session,
    settings: Settings,
    store: ObjectStore,
    *,
    user: User,
    dataset_id: int,
    upload_id: str,
    index: int,
    sha256: str,
) -> dict[str, Any]:
    """A short-lived presigned URL to PUT chunk `index` straight to S3, valid only for bytes with this sha256
    and the chunk's length."""
    sha256 = check_sha256(sha256, "chunk's sha256")
    upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
    require_open(upload)
    _require_direct(upload)
    check_index(upload, index)
    unchanged(session, upload_id, index, sha256)
    multipart, multipart_id = _multipart(store, upload)
    size, key = chunk_length(upload, index), multipart_key(upload_id, upload.sha256)
    # Read-only: the part's report, not its URL, marks the session as active (one write per chunk, as in api).
    ttl = settings.upload_url_ttl_s
    url, headers = multipart.presign_part(key, multipart_id, index + 1, sha256, size, ttl)
    return {"index": index, "url": url, "headers": headers, "expires_at": utcnow() + dt.timedelta(seconds=ttl)}


def report_part(
    settings: Settings,
    store: ObjectStore,
    *,
    user: User,
    dataset_id: int,
    upload_id: str,
    index: int,
    size_bytes: int,
    sha256: str,
    etag: str,
) -> None:
    """Records a chunk the client PUT to its presigned URL, after checking with S3 that the part is there with
    this size and ETag (S3 verified its sha256 against the signed checksum). Reporting it again is a no-op."""
    sha256 = check_sha256(sha256, "chunk's sha256")
    etag = etag.strip().strip('"')
    with session_scope(settings.database_url) as session:
        upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
        require_open(upload)
        check_index(upload, index)
        expected = chunk_length(upload, index)
        if size_bytes != expected:
            raise invalid(f"Chunk {index} has {size_bytes} bytes; it must have {expected} (chunk_size and file size).")
        if unchanged(session, upload_id, index, sha256):
            return
        _require_direct(upload)
        multipart, multipart_id = _multipart(store, upload)
        key = multipart_key(upload_id, upload.sha256)
    try:
        part = multipart.part(key, multipart_id, index + 1)
    except UploadGone as e:
        raise conflict(f"Upload {upload_id} has ended; start a new upload session.") from e
    if part is None:
        raise invalid(f"S3 has no part for chunk {index}: PUT it to its URL first (ask for a new URL if it expired).")
    if part.size != expected:
        raise invalid(f"S3 holds {part.size} bytes for chunk {index}; it must have {expected}. Send the chunk again.")
    if part.etag != etag:
        raise invalid(
            f"Chunk {index}'s ETag in S3 is {part.etag}, not {etag}: report the ETag S3 answered your PUT with "
            "(or send the chunk again)."
        )
    if part.sha256_b64 is not None and part.sha256_b64 != sha256_b64(sha256):
        raise invalid(f"Chunk {index} in S3 does not have sha256 {sha256}; send the chunk again.")
    record_chunk(settings, store, upload_id, index, size_bytes, sha256, part.etag)
