"""The one object-store interface every service talks to, its optional capabilities and its errors.

Services ask a store for a capability (`store.multipart`) instead of checking its class. Every failure of the
storage itself (a missing object, a driver or filesystem error) is an `AipError`, so the API answers it with a
status and a message that says what to change, and it survives being sent back from a Ray task.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from app.core.errors import AipError, ErrorCode


class ObjectNotFound(AipError):
    """No object under `key` (a key prefix is not an object)."""

    def __init__(self, key: str) -> None:
        super().__init__(
            ErrorCode.NOT_FOUND,
            f"The storage holds no object {key!r}; it may have been deleted, or AIP_STORAGE_URL names another "
            "store than the one that wrote it.",
        )
        self.key = key


class UploadGone(AipError):
    """The multipart upload was completed or aborted (e.g. its session ended meanwhile)."""

    def __init__(self, key: str, multipart_id: str) -> None:
        super().__init__(ErrorCode.CONFLICT, f"The storage no longer holds multipart upload {multipart_id} of {key!r}.")
        self.key, self.multipart_id = key, multipart_id


class PartsRejected(AipError):
    """Completing a multipart upload was refused: a part is missing or was replaced since it was reported."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.CONFLICT, f"The storage refused to join the parts: {reason}.")


def sha256_b64(hex_digest: str) -> str:
    """The base64 form of a sha256 that S3's checksum headers (and StoredPart) use."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


@dataclass(frozen=True)
class StoredPart:
    number: int
    size: int
    etag: str
    sha256_b64: str | None  # S3 reports it where it keeps part checksums (AWS, MinIO); SeaweedFS does not


class Multipart(Protocol):
    """Multipart uploads whose parts a client may also PUT straight to the store through presigned URLs.

    Every part carries a sha256 checksum the store verifies; parts are numbered from 1.
    """

    min_part_bytes: int  # every part but the last must have at least this many bytes

    def create(self, key: str) -> str:
        """Starts a multipart upload that will become the object `key`; returns its id."""

    def presign_part(
        self, key: str, multipart_id: str, number: int, sha256_hex: str, size: int, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        """A URL to PUT part `number` and the headers to send with it; the store takes only those exact bytes."""

    def upload_part(self, key: str, multipart_id: str, number: int, data: bytes, sha256_hex: str) -> str:
        """Sends one part from this process; returns its ETag. Raises UploadGone."""

    def list_parts(self, key: str, multipart_id: str, *, after: int = 0, limit: int = 1000) -> list[StoredPart]:
        """The parts numbered above `after` (at most `limit`). Raises UploadGone."""

    def part(self, key: str, multipart_id: str, number: int) -> StoredPart | None:
        """Part `number`, or None when it was not uploaded. Raises UploadGone."""

    def complete(self, key: str, multipart_id: str, parts: list[tuple[int, str, str]]) -> None:
        """Joins the parts `(number, etag, sha256 hex)` into `key`. Raises PartsRejected."""

    def abort(self, key: str, multipart_id: str) -> None:
        """Drops the upload and its parts; an upload already gone is not an error."""

    def uploads(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        """(key, upload id) of every upload under `prefix` that was neither completed nor aborted."""


class ObjectStore(Protocol):
    """Flat keys like `datasets/3/v1/data.csv`; values are bytes. Implementations: local files, S3."""

    url: str

    @property
    def multipart(self) -> Multipart | None:
        """Multipart uploads with presigned parts, where the store has them (S3); else None."""

    def put_file(self, key: str, source: BinaryIO, size: int = -1) -> None:
        """Stores everything readable from `source` under `key`, replacing any object there."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes. Raises ObjectNotFound."""

    def download(self, key: str, dest: Path) -> None:
        """Writes the object to `dest`. Raises ObjectNotFound."""

    def download_hashing(self, key: str, dest: Path, on_block: Callable[[bytes], None] | None = None) -> str:
        """Writes the object to `dest` in one streaming pass, passing each block in order to `on_block`; returns
        its sha256 (hex). Raises ObjectNotFound."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Removes the object; a missing object is not an error."""

    def delete_prefix(self, prefix: str) -> int:
        """Removes every object under `prefix` and returns how many."""

    def list(self, prefix: str = "") -> Iterator[str]: ...


def check_key(key: str) -> str:
    """Refuses keys that could escape the store's root (absolute, `..`, empty parts)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"Invalid object key {key!r}: use relative keys like 'datasets/1/v1/data.csv'.")
    return key
