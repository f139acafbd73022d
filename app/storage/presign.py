"""AWS Signature V4 presigned URLs that also sign request headers.

The minio client presigns with the `host` header only; a direct part upload must also bind the part's
`x-amz-checksum-sha256`, so S3 refuses bytes other than the ones the platform handed the URL out for and a client
cannot drop the header. Path-style URLs (`scheme://host/bucket/key`), which MinIO, SeaweedFS and AWS all accept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


def _quote(value: str) -> str:
    return quote(value, safe="-_.~")


def _signing_key(secret_key: str, day: str, region: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def presign(
    *,
    method: str,
    endpoint_url: str,
    bucket: str,
    key: str,
    access_key: str,
    secret_key: str,
    region: str,
    expires_s: int,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> str:
    """A URL for `method` on `bucket/key` valid for `expires_s`; the client must send exactly `headers`.

    Args:
        endpoint_url: `http[s]://host[:port]` as the client reaches S3 (the host is signed).
    """
    now = now or dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    netloc = urlsplit(endpoint_url).netloc
    signed = {"host": netloc, **{name.lower(): value.strip() for name, value in (headers or {}).items()}}
    signed_names = ";".join(sorted(signed))
    params = {
        **(query or {}),
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_s),
        "X-Amz-SignedHeaders": signed_names,
    }
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(params.items()))
    path = f"/{bucket}/{quote(key, safe='/-_.~')}"
    canonical_request = "\n".join(
        [
            method,
            path,
            canonical_query,
            "".join(f"{name}:{signed[name]}\n" for name in sorted(signed)),
            signed_names,
            "UNSIGNED-PAYLOAD",  # the payload is bound by the signed checksum header instead
        ]
    )
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    signature = hmac.new(_signing_key(secret_key, day, region), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{endpoint_url.rstrip('/')}{path}?{canonical_query}&X-Amz-Signature={signature}"
