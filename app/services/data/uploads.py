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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import Any

from minio.error import S3Error
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.contracts.status import UploadStatus
from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, invalid, not_found
from app.db.models import DatasetVersion, UploadChunk, UploadSession, User, utcnow
from app.db.session import session_scope
from app.services.data import datasets, formats, upload_spool
from app.services.identity.access import can_write
from app.storage import ObjectStore
from app.storage.s3 import PartsRejected, S3Store, sha256_b64

MIN_CHUNK_BYTES = 1024
MAX_CHUNKS = 10_000
S3_MIN_PART_BYTES = 5 << 20
COMPOSE_PREFETCH = 4
HEARTBEAT_S = 60.0  # a completing session's updated_at is touched this often while it reads back
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadMode(StrEnum):
    API = "api"
    DIRECT = "direct"


def part_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def part_key(upload_id: str, index: int) -> str:
    return f"{part_prefix(upload_id)}{index:06d}"


def multipart_key(upload_id: str, sha256: str) -> str:
    """Where a session's S3 multipart upload assembles the file: the upload's own blob key, which its version
    references once the bytes are verified (see the module docstring)."""
    return datasets.blob_key(sha256, upload_id)


def _parts_fit(num_chunks: int, chunk_size: int) -> bool:
    """S3 wants every part but the last to have at least 5 MiB."""
    return num_chunks == 1 or chunk_size >= S3_MIN_PART_BYTES


def _choose_mode(
    settings: Settings, store: ObjectStore | None, wanted: str, num_chunks: int, chunk_size: int
) -> UploadMode:
    if wanted not in ("auto", *UploadMode):
        raise invalid(f"Unknown upload mode {wanted!r}: use 'auto', 'api' or 'direct'.")
    possible = isinstance(store, S3Store) and settings.upload_direct
    parts_fit = _parts_fit(num_chunks, chunk_size)
    if wanted == UploadMode.DIRECT:
        if not possible:
            raise invalid(
                "Direct uploads need S3 storage (AIP_STORAGE_URL=s3://...) with AIP_UPLOAD_DIRECT on; "
                "use mode 'api' or 'auto'."
            )
        if not parts_fit:
            raise invalid(
                f"chunk_size {chunk_size} is too small for a direct upload: S3 needs parts of at least "
                f"{S3_MIN_PART_BYTES} bytes (5 MiB) except the last; use a larger chunk_size or mode 'api'."
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
            if isinstance(store, S3Store) and _parts_fit(num_chunks, chunk_size):
                multipart_id = store.create_multipart(multipart_key(upload_id, sha256))
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
        if started is not None:  # the row did not commit: nothing references the multipart upload
            assert isinstance(store, S3Store)
            store.abort_multipart(*started)
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


def _check_index(upload: UploadSession, index: int) -> None:
    if not 0 <= index < upload.num_chunks:
        raise invalid(f"Chunk index {index} is out of range: this upload has chunks 0 to {upload.num_chunks - 1}.")


def _unchanged(session: Session, upload_id: str, index: int, sha256: str) -> bool:
    """True when the chunk is stored already with this content (sending it again is a no-op)."""
    stored = session.get(UploadChunk, (upload_id, index))
    if stored is not None and stored.sha256 != sha256:
        raise conflict(f"Chunk {index} is already stored with other content (sha256 {stored.sha256}).")
    return stored is not None


def _require_direct(upload: UploadSession) -> None:
    if upload.mode != UploadMode.DIRECT:
        raise invalid(
            f"Upload {upload.id} sends its chunks through the API (mode {upload.mode}): "
            f"PUT them to .../upload/{upload.id}/chunk/{{index}}."
        )


def _direct_store(store: ObjectStore, upload: UploadSession) -> S3Store:
    if not isinstance(store, S3Store) or upload.multipart_id is None:
        raise conflict(f"Upload {upload.id} is not a direct upload on this storage; start a new upload session.")
    return store


def _record_chunk(
    settings: Settings, store: ObjectStore, upload_id: str, index: int, size: int, sha256: str, etag: str | None
) -> None:
    """Adds the row of a chunk whose bytes are stored; if the session ended meanwhile, drops those bytes."""
    with session_scope(settings.database_url) as session:
        upload = _locked(session, upload_id)
        if upload is None or upload.status != UploadStatus.OPEN:
            if etag is None:
                store.delete(part_key(upload_id, index))
            # A direct part is dropped with its multipart upload, which ending the session aborted.
            if upload is None:
                raise not_found("Upload session", upload_id)
            _require_open(upload)
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
        _require_open(upload)
        _check_index(upload, index)
        expected = chunk_length(upload, index)
        if len(data) != expected:
            raise invalid(f"Chunk {index} has {len(data)} bytes; it must have {expected} (chunk_size and file size).")
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise invalid(f"Chunk {index} does not match its checksum: its sha256 is {actual}, you sent {sha256}.")
        if _unchanged(session, upload_id, index, sha256):
            return
        direct = _direct_store(store, upload) if upload.multipart_id is not None else None
        multipart_id, key = upload.multipart_id, multipart_key(upload_id, upload.sha256)
        fmt, size, chunk_size = formats.detect(upload.file_name), upload.size_bytes, upload.chunk_size
    etag = None
    if direct is not None and multipart_id is not None:
        try:
            etag = direct.upload_part(key, multipart_id, index + 1, data, sha256)
        except S3Error as e:
            if e.code == "NoSuchUpload":  # the session ended while the part was sent
                raise conflict(f"Upload {upload_id} has ended; start a new upload session.") from e
            raise
    else:
        store.put_bytes(part_key(upload_id, index), data)
    _record_chunk(settings, store, upload_id, index, len(data), sha256, etag)
    upload_spool.receive(upload_id, fmt=fmt, size=size, chunk_size=chunk_size, index=index, data=data, sha256=sha256)


def part_url(
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
    with session_scope(settings.database_url) as session:
        upload = get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
        _require_open(upload)
        _require_direct(upload)
        _check_index(upload, index)
        _unchanged(session, upload_id, index, sha256)
        direct = _direct_store(store, upload)
        size, multipart_id = chunk_length(upload, index), upload.multipart_id
        key = multipart_key(upload_id, upload.sha256)
        # Read-only: the part's report, not its URL, marks the session as active (one write per chunk, as in api).
    assert multipart_id is not None
    ttl = settings.upload_url_ttl_s
    url, headers = direct.presign_part(key, multipart_id, index + 1, sha256, size, ttl)
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
        _require_open(upload)
        _check_index(upload, index)
        expected = chunk_length(upload, index)
        if size_bytes != expected:
            raise invalid(f"Chunk {index} has {size_bytes} bytes; it must have {expected} (chunk_size and file size).")
        if _unchanged(session, upload_id, index, sha256):
            return
        _require_direct(upload)
        direct = _direct_store(store, upload)
        multipart_id, key = upload.multipart_id, multipart_key(upload_id, upload.sha256)
    assert multipart_id is not None
    try:
        part = direct.part(key, multipart_id, index + 1)
    except S3Error as e:
        if e.code == "NoSuchUpload":
            raise conflict(f"Upload {upload_id} has ended; start a new upload session.") from e
        raise
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
    _record_chunk(settings, store, upload_id, index, size_bytes, sha256, part.etag)


def complete(settings: Settings, store: ObjectStore, *, user: User, dataset_id: int, upload_id: str) -> int:
    """Joins the parts, verifies size and sha256, records the version; returns its id. Idempotent."""
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
        num_chunks, multipart_id = upload.num_chunks, upload.multipart_id
        parts = [
            (chunk.index + 1, chunk.etag or "", chunk.sha256)
            for chunk in session.scalars(
                select(UploadChunk).where(UploadChunk.session_id == upload_id).order_by(UploadChunk.index)
            )
        ]
        # Claimed by a conditional UPDATE, so two concurrent completions cannot both proceed (SQLite has no row
        # locks; elsewhere the lock above already serialises them).
        claimed = session.execute(
            update(UploadSession)
            .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.OPEN)
            .values(status=UploadStatus.COMPLETING, updated_at=utcnow())
        )
        if claimed.rowcount != 1:
            raise conflict(f"Upload {upload_id} is being completed; ask for its status again in a moment.")
    # A joined multipart upload is the file under its blob key: the version references it once verified.
    joined = multipart_key(upload_id, declared) if multipart_id is not None and reuse_key is None else None
    try:
        with ExitStack() as cleanup:
            path = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="aip-compose-"))) / "data"
            inspected = None
            if reuse_key is not None:
                store.download(reuse_key, path)
                digest = _sha256_file(path)
                _verify(path, digest, size, declared)
            else:
                if joined is not None and multipart_id is not None:
                    _join(_direct(store), upload_id, joined, multipart_id, parts)
                spool = upload_spool.take(upload_id, [chunk_sha256 for _, _, chunk_sha256 in parts])
                if spool is not None:  # hashed and checked as its chunks came in: nothing to read back
                    cleanup.enter_context(spool)
                    path, digest = spool.path, spool.sha256()
                    _verify(path, digest, size, declared)
                    inspected = spool.check.result(path)
                else:
                    with formats.StreamCheck(fmt) as check:
                        feed = _keeping_alive(settings, upload_id, check.feed)
                        digest = _read_back(store, upload_id, joined, num_chunks, path, feed)
                        _verify(path, digest, size, declared)
                        inspected = check.result(path)

            def close(session: Session, version: DatasetVersion) -> None:
                # Only a session still COMPLETING: one expired or aborted meanwhile has had its stored bytes
                # removed, so its version must not be recorded (the conditional UPDATE also waits for, or is
                # waited on by, that end's row lock).
                closed = session.execute(
                    update(UploadSession)
                    .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.COMPLETING)
                    .values(status=UploadStatus.COMPLETED, version_id=version.id, updated_at=utcnow())
                )
                if closed.rowcount != 1:
                    ended = session.get(UploadSession, upload_id)
                    why = f"was {ended.status} ({ended.message})" if ended is not None else "was removed"
                    raise conflict(f"Upload {upload_id} {why} while it was being completed; upload the file again.")
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
                inspected=inspected,
                stored_key=joined,
            )
    except _LostPart as e:  # storage lost parts (e.g. restored from backup): forget them, so the client resends
        with session_scope(settings.database_url) as session:
            session.execute(
                delete(UploadChunk).where(UploadChunk.session_id == upload_id, UploadChunk.index.in_(e.indexes))
            )
        _reopen(settings, upload_id)
        shown = ", ".join(map(str, e.indexes[:20])) + (" ..." if len(e.indexes) > 20 else "")
        what = f"Chunk {shown} is" if len(e.indexes) == 1 else f"Chunks {shown} are"
        raise conflict(f"{what} missing from storage (upload {upload_id}); send again.") from e
    except AipError as e:
        if e.code is ErrorCode.INVALID_INPUT:  # the bytes themselves are wrong: this session cannot succeed
            _end(settings, store, upload_id, UploadStatus.ABORTED, e.message)
        else:
            _reopen(settings, upload_id)
        raise
    except BaseException:
        # e.g. storage unreachable: the client may call complete again, which reuses a joined object.
        _reopen(settings, upload_id)
        raise
    discard_stored(settings, store, upload_id, multipart_id, declared)
    return version_id


class _LostPart(Exception):
    def __init__(self, indexes: list[int]) -> None:
        super().__init__(indexes)
        self.indexes = indexes


def _direct(store: ObjectStore) -> S3Store:
    if not isinstance(store, S3Store):
        raise conflict("This upload's storage is no longer S3; start a new upload session.")
    return store


def _verify(path: Path, digest: str, size: int, declared: str) -> None:
    if path.stat().st_size != size or digest != declared:
        raise invalid(
            f"The composed file has {path.stat().st_size} bytes and sha256 {digest}, but the upload declared "
            f"{size} bytes and sha256 {declared}; the session was aborted. Check the file and upload again."
        )


def _join(store: S3Store, upload_id: str, key: str, multipart_id: str, parts: list[tuple[int, str, str]]) -> None:
    """Joins the recorded parts into `key` (the upload's own blob key: no row references it before the version)."""
    if store.exists(key):  # an earlier completion joined the parts and then failed: reuse them
        return
    try:
        store.complete_multipart(key, multipart_id, parts)
    except PartsRejected as e:
        try:
            held = {p.number: p.etag for p in store.list_parts(key, multipart_id, limit=MAX_CHUNKS)}
        except S3Error as gone:
            if gone.code != "NoSuchUpload":
                raise
            raise invalid(
                f"The storage no longer holds the parts of upload {upload_id}; the session was aborted. "
                "Upload the file again."
            ) from e
        lost = [number - 1 for number, etag, _ in parts if held.get(number) != etag]
        raise _LostPart(lost or [number - 1 for number, _, _ in parts]) from e


def _read_back(
    store: ObjectStore,
    upload_id: str,
    joined: str | None,
    num_chunks: int,
    dest: Path,
    on_block: Callable[[bytes], None],
) -> str:
    """Reads the joined file (multipart) or the part objects in order once into `dest`, hashing as it goes and
    passing each block to `on_block`; returns the sha256."""
    if joined is None:
        return _compose(store, upload_id, num_chunks, dest, on_block)
    try:
        return _direct(store).download_hashing(joined, dest, on_block)
    except KeyError as e:  # removed since it was joined: the parts went with the multipart upload
        raise invalid(f"The storage lost the joined file of upload {upload_id}; upload the file again.") from e


def discard_stored(
    settings: Settings, store: ObjectStore, upload_id: str, multipart_id: str | None, sha256: str
) -> None:
    """Removes what a session stored and no version references: part objects, its S3 multipart upload (aborted
    first, so a part still on its way cannot land after the objects were listed) and the object it was joined
    into (kept where the session's version references it)."""
    if multipart_id is not None and isinstance(store, S3Store):
        key = multipart_key(upload_id, sha256)
        store.abort_multipart(key, multipart_id)
        datasets.remove_unreferenced(settings, store, [key])
    store.delete_prefix(part_prefix(upload_id))


def _keeping_alive(settings: Settings, upload_id: str, feed: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """`feed`, also touching the COMPLETING session every so often, so the expiry sweep (which ends sessions idle
    for AIP_UPLOAD_SESSION_TTL_S, and completions whose process died) leaves a long read-back alone."""
    every = min(HEARTBEAT_S, settings.upload_session_ttl_s / 4)
    last = time.monotonic()

    def fed(block: bytes) -> None:
        nonlocal last
        feed(block)
        if time.monotonic() - last >= every:
            with session_scope(settings.database_url) as session:
                session.execute(
                    update(UploadSession)
                    .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.COMPLETING)
                    .values(updated_at=utcnow())
                )
            last = time.monotonic()

    return fed


def _reopen(settings: Settings, upload_id: str) -> None:
    with session_scope(settings.database_url) as session:
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.COMPLETING)
            .values(status=UploadStatus.OPEN, updated_at=utcnow())
        )


def _compose(store: ObjectStore, upload_id: str, num_chunks: int, dest: Path, on_block: Callable[[bytes], None]) -> str:
    """Concatenates the parts in order into `dest`, hashing as it goes (and passing each to `on_block`). A few
    parts are fetched ahead in parallel (bounded, so memory stays a few chunks whatever the file size)."""
    digest = hashlib.sha256()

    def fetch(index: int) -> bytes:
        try:
            return store.get_bytes(part_key(upload_id, index))
        except KeyError as e:
            raise _LostPart([index]) from e

    with dest.open("wb") as out, ThreadPoolExecutor(COMPOSE_PREFETCH) as pool:
        pending = deque(pool.submit(fetch, i) for i in range(min(COMPOSE_PREFETCH, num_chunks)))
        for index in range(num_chunks):
            data = pending.popleft().result()
            if index + COMPOSE_PREFETCH < num_chunks:
                pending.append(pool.submit(fetch, index + COMPOSE_PREFETCH))
            digest.update(data)
            out.write(data)
            on_block(data)
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
        _end(
            settings,
            store,
            upload_id,
            UploadStatus.EXPIRED,
            f"Idle for more than {settings.upload_session_ttl_s:.0f} s.",
        )
    return stale
