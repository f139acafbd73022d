"""The one object-store interface every service talks to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class ObjectStore(Protocol):
    """Flat keys like `datasets/3/v1/data.csv`; values are bytes. Implementations: local files, S3."""

    url: str

    def put_file(self, key: str, source: BinaryIO, size: int = -1) -> None:
        """Stores everything readable from `source` under `key`, replacing any object there."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def download(self, key: str, dest: Path) -> None: ...

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
