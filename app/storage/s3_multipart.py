"""S3 multipart uploads, the multipart capability of S3Store (direct uploads).

A client sends each part to a presigned URL whose signature binds the part's sha256 (`x-amz-checksum-sha256`), so
S3 itself verifies every part; the platform checks sizes and ETags, completes the upload and aborts it when a
session ends. The minio client has the multipart calls as underscore methods; the few it lacks (ListParts with
checksums, Complete with checksums) are sent through its request executor.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from minio import Minio
from minio.error import S3Error
from minio.helpers import md5sum_hash
from urllib3 import BaseHTTPResponse

from app.storage import presign
from app.storage.base import PartsRejected, StoredPart, UploadGone, sha256_b64

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_MISSING_UPLOAD = ("NoSuchUpload", "NoSuchKey", "NotFound")
_REJECTED = ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "BadDigest", *_MISSING_UPLOAD)


_PART_PUT_TTL_S = 900  # a part the platform sends itself: the URL is used at once, retries included


def _etag(value: str | None) -> str:
    return (value or "").strip().strip('"')


def _s3_error(response: BaseHTTPResponse) -> S3Error:
    """The error S3 answered a request sent outside the minio client's executor with."""
    try:
        return S3Error.fromxml(response)
    except ET.ParseError:
        text = response.data[:500].decode(errors="replace")
        return S3Error(
            response=response, code=f"HTTP{response.status}", message=text, resource=None, request_id=None, host_id=None
        )


class _Bucket(Protocol):
    """What the multipart calls need of the S3Store that owns them."""

    client: Minio
    bucket: str
    prefix: str

    def name(self, key: str) -> str: ...

    def errors(self, what: str, key: str | None = None) -> AbstractContextManager[None]: ...


class S3Multipart:
    min_part_bytes = 5 << 20  # S3's minimum for every part but the last

    def __init__(self, store: _Bucket, *, internal_url: str, public_url: str, access_key: str, secret_key: str) -> None:
        """`internal_url` is where the platform reaches S3, `public_url` where clients do (`scheme://host:port`)."""
        self._store = store
        self._client = store.client
        self._internal_url, self._public_url = internal_url, public_url
        self._access_key, self._secret_key = access_key, secret_key

    @contextmanager
    def _gone_or_errors(self, what: str, key: str, multipart_id: str) -> Iterator[None]:
        """Like the store's errors, but an upload S3 no longer holds is UploadGone."""
        with self._store.errors(what):
            try:
                yield
            except S3Error as e:
                if e.code in _MISSING_UPLOAD:
                    raise UploadGone(key, multipart_id) from e
                raise

    def create(self, key: str) -> str:
        """Starts a multipart upload whose parts carry sha256 checksums; returns its upload id."""
        with self._store.errors(f"start a multipart upload of {key!r}"):
            return self._client._create_multipart_upload(
                self._store.bucket, self._store.name(key), {"x-amz-checksum-algorithm": "SHA256"}
            )

    def presign_part(
        self, key: str, multipart_id: str, number: int, sha256_hex: str, size: int, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        """A URL to PUT part `number` (1-based) and the headers the client must send with it: both the checksum
        and the length are signed, so S3 takes only those exact bytes."""
        headers = {"x-amz-checksum-sha256": sha256_b64(sha256_hex), "content-length": str(size)}
        return self._signed_part_url(self._public_url, key, multipart_id, number, headers, expires_s), headers

    def _signed_part_url(
        self, endpoint_url: str, key: str, multipart_id: str, number: int, headers: dict[str, str], expires_s: int
    ) -> str:
        with self._store.errors(f"look up the region of bucket {self._store.bucket!r}"):
            region = self._client._get_region(self._store.bucket)
        return presign.presign(
            method="PUT",
            endpoint_url=endpoint_url,
            bucket=self._store.bucket,
            key=self._store.name(key),
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=region,
            expires_s=expires_s,
            query={"partNumber": str(number), "uploadId": multipart_id},
            headers=headers,
        )

    def upload_part(self, key: str, multipart_id: str, number: int, data: bytes, sha256_hex: str) -> str:
        """Sends one part from the platform itself (a chunk that came through the API, its sha256 checked);
        returns its ETag. Signed as a part URL is, the checksum and length bound, so S3 verifies the bytes against
        the sha256 already known; the minio client would hash the whole body again to sign it."""
        headers = {"x-amz-checksum-sha256": sha256_b64(sha256_hex), "content-length": str(len(data))}
        with self._gone_or_errors(f"store part {number} of {key!r}", key, multipart_id):
            url = self._signed_part_url(self._internal_url, key, multipart_id, number, headers, _PART_PUT_TTL_S)
            response = self._client._http.urlopen("PUT", url, body=data, headers=headers)
            if response.status >= 300:
                raise _s3_error(response)
            return _etag(response.headers.get("etag"))

    def list_parts(self, key: str, multipart_id: str, *, after: int = 0, limit: int = 1000) -> list[StoredPart]:
        """The uploaded parts numbered above `after` (at most `limit`; pages through all when `limit` > 1000)."""
        parts: list[StoredPart] = []
        while len(parts) < limit:
            with self._gone_or_errors(f"list the parts of {key!r}", key, multipart_id):
                response = self._client._execute(
                    "GET",
                    self._store.bucket,
                    object_name=self._store.name(key),
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

    def complete(self, key: str, multipart_id: str, parts: list[tuple[int, str, str]]) -> None:
        """Joins the parts `(number, etag, sha256 hex)` into `key`. S3 checks each ETag (and checksum) against
        the part it holds, so a part replaced after it was reported cannot slip in: PartsRejected instead."""
        body = "".join(
            f'<Part><PartNumber>{number}</PartNumber><ETag>"{etag}"</ETag>'
            f"<ChecksumSHA256>{sha256_b64(sha)}</ChecksumSHA256></Part>"
            for number, etag, sha in parts
        )
        data = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        with self._store.errors(f"join the parts of {key!r}"):
            try:
                response = self._client._execute(
                    "POST",
                    self._store.bucket,
                    self._store.name(key),
                    body=data,
                    headers={"Content-Type": "application/xml", "Content-MD5": md5sum_hash(data) or ""},
                    query_params={"uploadId": multipart_id},
                )
            except S3Error as e:
                if e.code in _REJECTED:
                    raise PartsRejected(f"{e.code}: {e.message}") from e
                raise
        root = ET.fromstring(response.data.decode())  # S3 may answer 200 with an error inside
        if root.tag.endswith("Error"):
            raise PartsRejected(f"{root.findtext('Code')}: {root.findtext('Message')}")

    def abort(self, key: str, multipart_id: str) -> None:
        """Drops the upload and every part it holds; an upload already gone is not an error."""
        try:
            with self._gone_or_errors(f"abort the multipart upload of {key!r}", key, multipart_id):
                self._client._abort_multipart_upload(self._store.bucket, self._store.name(key), multipart_id)
        except UploadGone:
            pass

    def uploads(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        """(key, upload id) of every multipart upload under `prefix` that was neither completed nor aborted."""
        base = f"{self._store.prefix}/" if self._store.prefix else ""
        key_marker = upload_marker = None
        while True:
            with self._store.errors(f"list the multipart uploads under {prefix!r}"):
                result = self._client._list_multipart_uploads(
                    self._store.bucket, prefix=base + prefix, key_marker=key_marker, upload_id_marker=upload_marker
                )
            for upload in result.uploads:
                yield upload.object_name.removeprefix(base), upload.upload_id or ""
            if not result.is_truncated or not result.uploads:
                return
            key_marker, upload_marker = result.uploads[-1].object_name, result.uploads[-1].upload_id
