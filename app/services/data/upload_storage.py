"""Where an upload session's bytes wait in storage until it ends, and removing them.

Chunks that came through the API as objects sit under `uploads/<session id>/`; a session with a multipart upload
(`store.multipart`) assembles the file at its own blob key. Below datasets (deleting a dataset ends its sessions)
and the upload services.
"""

from __future__ import annotations

from app.core.config import Settings
from app.services.data import blobs
from app.storage import ObjectStore


def part_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def part_key(upload_id: str, index: int) -> str:
    return f"{part_prefix(upload_id)}{index:06d}"


def multipart_key(upload_id: str, sha256: str) -> str:
    """Where a session's multipart upload assembles the file: the upload's own blob key, which its version
    references once the bytes are verified (see app.services.data.uploads)."""
    return blobs.blob_key(sha256, upload_id)


def discard_stored(
    settings: Settings, store: ObjectStore, upload_id: str, multipart_id: str | None, sha256: str
) -> None:
    """Removes what a session stored and no version references: part objects, its multipart upload (aborted
    first, so a part still on its way cannot land after the objects were listed) and the object it was joined
    into (kept where the session's version references it)."""
    if multipart_id is not None and store.multipart is not None:
        key = multipart_key(upload_id, sha256)
        store.multipart.abort(key, multipart_id)
        blobs.remove_unreferenced(settings, store, [key])
    store.delete_prefix(part_prefix(upload_id))
