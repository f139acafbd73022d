"""Completing an upload: join its parts, verify the whole file's size and sha256, record the version.

Chunks this process received were hashed and format-checked as they arrived (`upload_spool`): completion uses
that. Otherwise it reads the file back once, in order: the same pass hashes it, writes the scratch file and feeds
the format check. A session with a multipart upload is joined inside the storage at its own blob key, which the
version then references: no copy follows. Several transactions, on purpose: the session is claimed (COMPLETING)
and committed before the long read-back, and closed in the version's own transaction, so a crash in between
leaves a session the expiry sweep can end.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode, conflict, invalid, not_found
from app.db.models import DatasetVersion, UploadChunk, UploadSession, User, utcnow
from app.db.session import rows_changed, session_scope
from app.services.data import datasets, formats, upload_spool
from app.services.data.upload_storage import discard_stored, multipart_key, part_key
from app.services.data.uploads import (
    MAX_CHUNKS,
    UploadStatus,
    end_session,
    get_session,
    known_content,
    locked,
    received,
    require_open,
)
from app.storage import ObjectStore
from app.storage.base import Multipart, ObjectNotFound, PartsRejected, UploadGone

COMPOSE_PREFETCH = 4
HEARTBEAT_S = 60.0  # a completing session's updated_at is touched this often while it reads back


def complete(settings: Settings, store: ObjectStore, *, user: User, dataset_id: int, upload_id: str) -> int:
    """Joins the parts, verifies size and sha256, records the version; returns its id. Idempotent."""
    with session_scope(settings.database_url) as session:
        get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)  # may this user see it?
        upload = locked(session, upload_id)
        if upload is None:  # its dataset was deleted meanwhile
            raise not_found("Upload session", upload_id)
        if upload.status == UploadStatus.COMPLETED and upload.version_id is not None:
            return upload.version_id
        require_open(upload)
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
        claimed = rows_changed(
            session,
            update(UploadSession)
            .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.OPEN)
            .values(status=UploadStatus.COMPLETING, updated_at=utcnow()),
        )
        if claimed != 1:
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
                    _join(store, upload_id, joined, multipart_id, parts)
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
                closed = rows_changed(
                    session,
                    update(UploadSession)
                    .where(UploadSession.id == upload_id, UploadSession.status == UploadStatus.COMPLETING)
                    .values(status=UploadStatus.COMPLETED, version_id=version.id, updated_at=utcnow()),
                )
                if closed != 1:
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
            end_session(settings, store, upload_id, UploadStatus.ABORTED, e.message)
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


def _multipart(store: ObjectStore) -> Multipart:
    if store.multipart is None:
        raise conflict("This upload's storage no longer has multipart uploads; start a new upload session.")
    return store.multipart


def _verify(path: Path, digest: str, size: int, declared: str) -> None:
    if path.stat().st_size != size or digest != declared:
        raise invalid(
            f"The composed file has {path.stat().st_size} bytes and sha256 {digest}, but the upload declared "
            f"{size} bytes and sha256 {declared}; the session was aborted. Check the file and upload again."
        )


def _join(store: ObjectStore, upload_id: str, key: str, multipart_id: str, parts: list[tuple[int, str, str]]) -> None:
    """Joins the recorded parts into `key` (the upload's own blob key: no row references it before the version)."""
    if store.exists(key):  # an earlier completion joined the parts and then failed: reuse them
        return
    multipart = _multipart(store)
    try:
        multipart.complete(key, multipart_id, parts)
    except PartsRejected as e:
        try:
            held = {p.number: p.etag for p in multipart.list_parts(key, multipart_id, limit=MAX_CHUNKS)}
        except UploadGone:
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
        return store.download_hashing(joined, dest, on_block)
    except ObjectNotFound as e:  # removed since it was joined: the parts went with the multipart upload
        raise invalid(f"The storage lost the joined file of upload {upload_id}; upload the file again.") from e


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
        except ObjectNotFound as e:
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
