"""Object storage on S3 / MinIO / SeaweedFS through the `minio` client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from app.storage.base import check_key

_PART_SIZE = 16 * 1024 * 1024


class S3Store:
    def __init__(
        self, *, bucket: str, prefix: str, endpoint: str, access_key: str, secret_key: str, secure: bool
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        if not self.client.bucket_exists(bucket):
            self.client.make_bucket(bucket)

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, source: BinaryIO, size: int = -1) -> None:
        self.client.put_object(self.bucket, self._name(key), source, length=size, part_size=_PART_SIZE)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_file(key, io.BytesIO(data), len(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, self._name(key))
        except S3Error as e:
            if e.code == "NoSuchKey":
                raise KeyError(key) from e
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def download(self, key: str, dest: Path) -> None:
        try:
            self.client.fget_object(self.bucket, self._name(key), str(dest))
        except S3Error as e:
            if e.code == "NoSuchKey":
                raise KeyError(key) from e
            raise

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, self._name(key))
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self._name(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        errors = list(self.client.remove_objects(self.bucket, [DeleteObject(self._name(k)) for k in keys]))
        if errors:
            raise OSError(f"Could not delete {len(errors)} objects under {prefix!r}: {errors[0]}")
        return len(keys)

    def list(self, prefix: str = "") -> Iterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        for obj in self.client.list_objects(self.bucket, prefix=base + prefix, recursive=True):
            yield obj.object_name.removeprefix(base)
