"""Object storage on the local filesystem (the embedded default). It has no multipart capability."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from app.core.errors import AipError, ErrorCode
from app.storage.base import Multipart, ObjectNotFound, check_key

_BLOCK = 1 << 20


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        with self._errors("create the storage folder"):
            self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"file://{self.root}"

    @property
    def multipart(self) -> Multipart | None:
        return None

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            raise AipError(
                ErrorCode.UNAVAILABLE,
                f"The storage could not {what} under {self.root}: {e.strerror or e}. Check that AIP_STORAGE_URL "
                "names a folder this process may write, on a disk with free space.",
            ) from e

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():  # a folder is a key prefix, not an object
            raise ObjectNotFound(key)
        return path

    def put_file(self, key: str, source: BinaryIO, size: int = -1) -> None:  # noqa: ARG002 - S3 needs the size, a file does not
        path = self._path(key)
        with self._errors(f"write {key!r}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temp file and rename, so a reader never sees half an object.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                # Only the writes are the storage's errors: a source that fails to read is the caller's.
                while block := source.read(_BLOCK):
                    with self._errors(f"write {key!r}"):
                        out.write(block)
            with self._errors(f"write {key!r}"):
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_file(key, io.BytesIO(data), len(data))

    def get_bytes(self, key: str) -> bytes:
        path = self._existing(key)
        with self._errors(f"read {key!r}"):
            return path.read_bytes()

    def download(self, key: str, dest: Path) -> None:
        path = self._existing(key)
        with self._errors(f"copy {key!r} to {dest}"):
            shutil.copyfile(path, dest)

    def download_hashing(self, key: str, dest: Path, on_block: Callable[[bytes], None] | None = None) -> str:
        path = self._existing(key)
        digest = hashlib.sha256()
        with self._errors(f"copy {key!r} to {dest}"), path.open("rb") as source, dest.open("wb") as out:
            while block := source.read(_BLOCK):
                digest.update(block)
                out.write(block)
                if on_block is not None:
                    on_block(block)
        return digest.hexdigest()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            with self._errors(f"delete {key!r}"):
                path.unlink(missing_ok=True)
                self._prune_empty_dirs(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def list(self, prefix: str = "") -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent
