"""Where dataset bytes live in storage, and removing the stored objects no version references any more.

Every version's bytes live under `datasets/blobs/`: at `<sha256>`, or at `<sha256>.<upload id>` where an upload
joined them inside S3. Fitted pipeline states live under `datasets/states/`. An object is removed when the last
row referencing it is deleted, so the store holds exactly what the database references. Below datasets and
uploads, which both remove what they stored.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.db.models import DatasetVersion
from app.db.session import session_scope
from app.storage import ObjectStore

BLOB_PREFIX = "datasets/blobs/"
STATE_PREFIX = "datasets/states/"


def blob_key(sha256: str, upload_id: str | None = None) -> str:
    """Where content with this sha256 is stored; with `upload_id`, where S3 joins that upload's parts, for its
    version to reference once the bytes are verified."""
    return f"{BLOB_PREFIX}{sha256[:2]}/{sha256}" + (f".{upload_id}" if upload_id else "")


def stored_content(session: Session, *, sha256: str, size: int) -> str | None:
    """The key of stored bytes with this sha256 and size (any version's, readable or not), if there are any."""
    return session.scalar(
        select(DatasetVersion.storage_key)
        .where(DatasetVersion.sha256 == sha256, DatasetVersion.size_bytes == size)
        .order_by(DatasetVersion.id)
        .limit(1)
    )


def remove_unreferenced(settings: Settings, store: ObjectStore, keys: list[str]) -> None:
    """Deletes those of `keys` (blobs, pipeline states) that no version references any more. Its own transaction:
    callers run it after the commit that dropped the references."""
    with session_scope(settings.database_url) as session:
        delete_unreferenced(session, store, keys)


def delete_unreferenced(session: Session, store: ObjectStore, keys: list[str]) -> None:
    for key in set(keys):
        used = session.scalar(
            select(func.count())
            .select_from(DatasetVersion)
            .where((DatasetVersion.storage_key == key) | (DatasetVersion.state_key == key))
        )
        if not used:
            store.delete(key)


def referenced_keys(session: Session) -> set[str]:
    """Every object key the database references in the data layer (for orphan checks)."""
    keys: set[str] = set()
    for storage_key, state_key in session.execute(select(DatasetVersion.storage_key, DatasetVersion.state_key)):
        keys.add(storage_key)
        if state_key:
            keys.add(state_key)
    return keys
