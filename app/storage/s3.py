"""Object storage on S3 / MinIO / SeaweedFS through the `minio` client.

Beyond the ObjectStore interface, S3Store runs the S3 multipart uploads behind direct uploads: a client sends each
part to a presigned URL whose signature binds the part's sha256 (`x-amz-checksum-sha256`), so S3 itself verifies
every part; the platform checks sizes and ETags, completes the upload and aborts it when a session ends. The
minio client has the multipart calls as underscore methods; the few it lacks (ListParts with checksums, Complete
with checksums) are sent through its request executor.
"""

from __future__ import annotations

import base64
import hashlib
import io
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.commonconfig import ComposeSource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.helpers import md5sum_hash

from app.storage import presign
from app.storage.base import check_key

_PART_SIZE = 16 * 1024 * 1024
_READ_RANGE = 16 * 1024 * 1024  # ranged GETs of a streaming read: a few in flight, hashed in order
_READ_AHEAD = 3
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_MISSING_UPLOAD = ("NoSuchUpload", "NoSuchKey", "NotFound")


@dataclass(frozen=True)
class StoredPart:
    number: int
    size: int
    etag: str
    sha256_b64: str | None  # S3 reports it where it keeps part checksums (AWS, MinIO); SeaweedFS does not


class PartsRejected(Exception):
    """CompleteMultipartUpload refused the parts (one is missing or was replaced since it was reported)."""


def sha256_b64(hex_digest: str) -> str:
    """The base64 form S3's checksum headers use."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _etag(value: str | None) -> str:
    return (value or "").strip().strip('"')


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
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        self._access_key, self._secret_key = access_key, secret_key
        public = public_endpoint or endpoint
        self.public_url = public if "://" in public else f"{'https' if secure else 'http'}://{public}"
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

    # streaming read and server-side copy

    def download_hashing(self, key: str, dest: Path, on_block: Callable[[bytes], None] | None = None) -> str:
        """Downloads `key` into `dest` in one streaming pass and returns its sha256 (hex). A few ranged GETs are
        in flight while the previous range is hashed and written, so the network and the hash overlap.
        `on_block` sees each range in order too (e.g. a format check parsing as the bytes arrive)."""
        name = self._name(key)
        try:
            size = self.client.stat_object(self.bucket, name).size or 0
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise KeyError(key) from e
            raise

        def fetch(offset: int) -> bytes:
            response = self.client.get_object(self.bucket, name, offset=offset, length=min(_READ_RANGE, size - offset))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

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
        self.client.compose_object(self.bucket, self._name(dest), [ComposeSource(self.bucket, self._name(source))])

    # multipart uploads (direct uploads)

    def create_multipart(self, key: str) -> str:
        """Starts a multipart upload whose parts carry sha256 checksums; returns its upload id."""
        return self.client._create_multipart_upload(
            self.bucket, self._name(key), {"x-amz-checksum-algorithm": "SHA256"}
        )

    def presign_part(
        self, key: str, multipart_id: str, number: int, sha256_hex: str, size: int, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        """A URL to PUT part `number` (1-based) and the headers the client must send with it: both the checksum
        and the length are signed, so S3 takes only those exact bytes."""
        headers = {"x-amz-checksum-sha256": sha256_b64(sha256_hex), "content-length": str(size)}
        url = presign.presign(
            method="PUT",
            endpoint_url=self.public_url,
            bucket=self.bucket,
            key=self._name(key),
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.client._get_region(self.bucket),
            expires_s=expires_s,
            query={"partNumber": str(number), "uploadId": multipart_id},
            headers=headers,
        )
        return url, headers

    def upload_part(self, key: str, multipart_id: str, number: int, data: bytes, sha256_hex: str) -> str:
        """Sends one part from the platform itself (a chunk that came through the API); returns its ETag."""
        headers = {"x-amz-checksum-sha256": sha256_b64(sha256_hex)}
        return _etag(self.client._upload_part(self.bucket, self._name(key), data, headers, multipart_id, number))

    def list_parts(self, key: str, multipart_id: str, *, after: int = 0, limit: int = 1000) -> list[StoredPart]:
        """The uploaded parts numbered above `after` (at most `limit`; pages through all when `limit` > 1000)."""
        parts: list[StoredPart] = []
        while len(parts) < limit:
            response = self.client._execute(
                "GET",
                self.bucket,
                object_name=self._name(key),
                query_params={
                    "uploadId": multipart_id,
                    "max-parts": str(min(1000, limit - len(parts))),
                    "part-number-marker": str(after),
                },
            )
            root = ET.fromstring(response.data.decode())
            page = [
                StoredPart(
                    number=int(p.findtext(f"{_NS}PartNumber") or 0),
                    size=int(p.findtext(f"{_NS}Size") or 0),
                    etag=_etag(p.findtext(f"{_NS}ETag")),
                    sha256_b64=p.findtext(f"{_NS}ChecksumSHA256"),
                )
                for p in root.iter(f"{_NS}Part")
            ]
            parts += page
            if not page or (root.findtext(f"{_NS}IsTruncated") or "").lower() != "true":
                break
            after = page[-1].number
        return parts[:limit]

    def part(self, key: str, multipart_id: str, number: int) -> StoredPart | None:
        found = self.list_parts(key, multipart_id, after=number - 1, limit=1)
        return found[0] if found and found[0].number == number else None

    def complete_multipart(self, key: str, multipart_id: str, parts: list[tuple[int, str, str]]) -> None:
        """Joins the parts `(number, etag, sha256 hex)` into `key`. S3 checks each ETag (and checksum) against
        the part it holds, so a part replaced after it was reported cannot slip in: PartsRejected instead."""
        body = "".join(
            f'<Part><PartNumber>{number}</PartNumber><ETag>"{etag}"</ETag>'
            f"<ChecksumSHA256>{sha256_b64(sha)}</ChecksumSHA256></Part>"
            for number, etag, sha in parts
        )
        data = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        try:
            response = self.client._execute(
                "POST",
                self.bucket,
                self._name(key),
                body=data,
                headers={"Content-Type": "application/xml", "Content-MD5": md5sum_hash(data)},
                query_params={"uploadId": multipart_id},
            )
        except S3Error as e:
            if e.code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "BadDigest", *_MISSING_UPLOAD):
                raise PartsRejected(f"{e.code}: {e.message}") from e
            raise
        root = ET.fromstring(response.data.decode())  # S3 may answer 200 with an error inside
        if root.tag.endswith("Error"):
            raise PartsRejected(f"{root.findtext('Code')}: {root.findtext('Message')}")

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        """Drops the upload and every part it holds; an upload already gone is not an error."""
        try:
            self.client._abort_multipart_upload(self.bucket, self._name(key), multipart_id)
        except S3Error as e:
            if e.code not in _MISSING_UPLOAD:
                raise

    def list_multipart_uploads(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        """(key, upload id) of every multipart upload under `prefix` that was neither completed nor aborted."""
        base = f"{self.prefix}/" if self.prefix else ""
        key_marker = upload_marker = None
        while True:
            result = self.client._list_multipart_uploads(
                self.bucket, prefix=base + prefix, key_marker=key_marker, upload_id_marker=upload_marker
            )
            for upload in result.uploads:
                yield upload.object_name.removeprefix(base), upload.upload_id
            if not result.is_truncated or not result.uploads:
                return
            key_marker, upload_marker = result.uploads[-1].object_name, result.uploads[-1].upload_id
