"""Object storage on S3 / MinIO / SeaweedFS through the `minio` client.

It has the multipart capability (`app.storage.s3_multipart`): the S3 multipart uploads behind direct uploads.
Driver errors become `AipError`s here, so nothing above this package sees a minio or urllib3 exception.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.commonconfig import ComposeSource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from app.core.errors import AipError, ErrorCode
from app.storage.base import Multipart, ObjectNotFound, check_key
from app.storage.s3_multipart import S3Multipart

_PART_SIZE = 16 * 1024 * 1024
_READ_RANGE = 16 * 1024 * 1024  # ranged GETs of a streaming read: a few in flight, hashed in order
_READ_AHEAD = 3
_MISSING_OBJECT = ("NoSuchKey", "NoSuchObject", "NotFound")
_CREDENTIALS = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


class S3Store:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        endpoint: str,
        access_key: str,
        secret_key: str,
        secure: bool,
        public_endpoint: str = "",
    ) -> None:
        """`public_endpoint` (`[http[s]://]host:port`) is where clients reach S3 for direct uploads, when the
        platform reaches it by another (internal) address."""
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint = endpoint
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        public = public_endpoint or endpoint
        self.public_url = public if "://" in public else f"{'https' if secure else 'http'}://{public}"
        internal_url = f"{'https' if secure else 'http'}://{endpoint}"
        self._multipart = S3Multipart(
            self, internal_url=internal_url, public_url=self.public_url, access_key=access_key, secret_key=secret_key
        )
        with self.errors("open the bucket"):
            if not self.client.bucket_exists(bucket):
                self.client.make_bucket(bucket)

    @property
    def multipart(self) -> Multipart | None:
        return self._multipart

    @contextmanager
    def errors(self, what: str, key: str | None = None) -> Iterator[None]:
        """Turns the driver's errors into AipErrors that say what to check; a missing `key` is ObjectNotFound."""
        try:
            yield
        except S3Error as e:
            if key is not None and e.code in _MISSING_OBJECT:
                raise ObjectNotFound(key) from e
            hint = "the S3 server's log"
            if e.code in _CREDENTIALS:
                hint = "AIP_S3_ACCESS_KEY / AIP_S3_SECRET_KEY and the key's rights on the bucket"
            elif e.code == "NoSuchBucket":
                hint = "the bucket in AIP_STORAGE_URL"
            raise AipError(
                ErrorCode.UNAVAILABLE,
                f"S3 refused to {what} in {self.url}: {e.code}: {e.message}. Check {hint}.",
            ) from e
        except HTTPError as e:
            raise AipError(
                ErrorCode.UNAVAILABLE,
                f"S3 at {self.endpoint} did not answer while trying to {what}: {e}. Check that it runs and that "
                "AIP_S3_ENDPOINT (host:port) and AIP_S3_SECURE name it.",
            ) from e

    def name(self, key: str) -> str:
        """The S3 object name of `key` (under the store's prefix)."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, source: BinaryIO, size: int = -1) -> None:
        with self.errors(f"write {key!r}"):
            self.client.put_object(self.bucket, self.name(key), source, length=size, part_size=_PART_SIZE)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_file(key, io.BytesIO(data), len(data))

    def get_bytes(self, key: str) -> bytes:
        return self._read(key, self.name(key))

    def _read(self, key: str, name: str, offset: int = 0, length: int = 0) -> bytes:
        with self.errors(f"read {key!r}", key):
            response = self.client.get_object(self.bucket, name, offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def download(self, key: str, dest: Path) -> None:
        with self.errors(f"read {key!r}", key):
            self.client.fget_object(self.bucket, self.name(key), str(dest))

    def exists(self, key: str) -> bool:
        try:
            with self.errors(f"look up {key!r}", key):
                self.client.stat_object(self.bucket, self.name(key))
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        with self.errors(f"delete {key!r}"):
            self.client.remove_object(self.bucket, self.name(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        with self.errors(f"delete the objects under {prefix!r}"):
            errors = list(self.client.remove_objects(self.bucket, [DeleteObject(self.name(k)) for k in keys]))
        if errors:
            raise AipError(
                ErrorCode.UNAVAILABLE,
                f"S3 did not delete {len(errors)} objects under {prefix!r} in {self.url}: {errors[0]}. "
                "Check the key's delete rights on the bucket.",
            )
        return len(keys)

    def list(self, prefix: str = "") -> Iterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        with self.errors(f"list the objects under {prefix!r}"):
            for obj in self.client.list_objects(self.bucket, prefix=base + prefix, recursive=True):
                yield obj.object_name.removeprefix(base)

    # streaming read and server-side copy

    def download_hashing(self, key: str, dest: Path, on_block: Callable[[bytes], None] | None = None) -> str:
        """Downloads `key` into `dest` in one streaming pass and returns its sha256 (hex). A few ranged GETs are
        in flight while the previous range is hashed and written, so the network and the hash overlap.
        `on_block` sees each range in order too (e.g. a format check parsing as the bytes arrive)."""
        name = self.name(key)
        with self.errors(f"read {key!r}", key):
            size = self.client.stat_object(self.bucket, name).size or 0

        def fetch(offset: int) -> bytes:
            return self._read(key, name, offset, min(_READ_RANGE, size - offset))

        digest = hashlib.sha256()
        offsets = deque(range(0, size, _READ_RANGE))
        with dest.open("wb") as out, ThreadPoolExecutor(_READ_AHEAD, thread_name_prefix="aip-read") as pool:
            pending = deque(pool.submit(fetch, offsets.popleft()) for _ in range(min(_READ_AHEAD, len(offsets))))
            while pending:
                data = pending.popleft().result()
                if offsets:
                    pending.append(pool.submit(fetch, offsets.popleft()))
                digest.update(data)
                out.write(data)
                if on_block is not None:
                    on_block(data)
        return digest.hexdigest()

    def copy(self, source: str, dest: str) -> None:
        """Copies inside the S3 server (multipart copy above 5 GiB): the bytes do not cross the network."""
        with self.errors(f"copy {source!r} to {dest!r}", source):
            self.client.compose_object(self.bucket, self.name(dest), [ComposeSource(self.bucket, self.name(source))])
