"""Client side of resumable chunked uploads (used by the SDK and the CLI).

Declaring the same file again (name, size, sha256, chunk size) returns the server's open session with the chunks
it already has, so re-running an interrupted upload sends only the missing chunks. Chunks go where the session's
mode says: through the API, or (direct, on S3 storage) straight to S3 with presigned URLs, reported afterwards.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import urllib3

from app.client.http import ApiError, Connection

DEFAULT_CHUNK_SIZE = 8 << 20
DEFAULT_PARALLEL = 4


def file_sha256(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


def upload_file(
    client: Connection,
    dataset_id: int,
    path: str | Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    parallel: int = DEFAULT_PARALLEL,
    sha256: str | None = None,
    mode: str = "auto",
    on_session: Callable[[dict[str, Any]], None] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Uploads `path` as a new version of the dataset and returns the version.

    Args:
        mode: "auto" sends chunks straight to S3 when the server offers it (S3 storage), else through the API;
            "api" or "direct" insist on one.
        on_session: called with the session once opened (its `received` chunks will not be sent again).
        on_chunk: called with (index, bytes) after each chunk the server accepted.
    """
    path = Path(path)
    size = path.stat().st_size
    declared = {
        "file_name": path.name,
        "size_bytes": size,
        "sha256": sha256 or file_sha256(path),
        "chunk_size": chunk_size,
        "mode": mode,
    }
    session = client._call("POST", f"/dataset/{dataset_id}/upload", json=declared)
    if on_session:
        on_session(session)
    base = f"/dataset/{dataset_id}/upload/{session['id']}"
    if not session["content_known"]:
        have = set(session["received"])
        todo = [i for i in range(session["num_chunks"]) if i not in have]
        if session["mode"] == "direct":
            # urllib3 rather than httpx for the bodies: it sends a large body about twice as fast here.
            with urllib3.PoolManager(maxsize=max(1, parallel), timeout=client._http.timeout.read) as s3:
                _send_chunks(path, chunk_size, todo, parallel, _direct_sender(client, s3, base), on_chunk)
        else:
            _send_chunks(path, chunk_size, todo, parallel, _api_sender(client, base), on_chunk)
    return client._call("POST", f"{base}/complete")


# Sends one chunk; may return a last step (the direct part's report) to run off the sending thread.
Sender = Callable[[int, bytes], Callable[[], None] | None]


def _api_sender(client: Connection, base: str) -> Sender:
    def send(index: int, data: bytes) -> None:
        headers = {"X-Chunk-Sha256": hashlib.sha256(data).hexdigest(), "content-type": "application/octet-stream"}
        client._call("PUT", f"{base}/chunk/{index}", content=data, headers=headers)

    return send


def _direct_sender(client: Connection, s3: urllib3.PoolManager, base: str) -> Sender:
    """Asks the platform for the chunk's presigned URL and PUTs the bytes straight to S3; the report of the part
    runs afterwards, so the sending thread goes on to its next chunk meanwhile.
    `s3` carries no platform credentials: the URL's signature is the only authorisation S3 sees."""

    def send(index: int, data: bytes) -> Callable[[], None]:
        sha256 = hashlib.sha256(data).hexdigest()
        grant = client._call("POST", f"{base}/chunk/{index}/url", json={"sha256": sha256})
        response = s3.request("PUT", grant["url"], body=data, headers=grant["headers"], retries=False)
        if response.status >= 300:
            raise ApiError(response.status, f"S3 refused chunk {index}: {response.data[:500].decode(errors='replace')}")
        report = {"size_bytes": len(data), "sha256": sha256, "etag": response.headers.get("etag", "")}
        return lambda: client._call("POST", f"{base}/chunk/{index}/done", json=report)

    return send


def _send_chunks(
    path: Path,
    chunk_size: int,
    indexes: list[int],
    parallel: int,
    send: Sender,
    on_chunk: Callable[[int, int], None] | None,
) -> None:
    stop = threading.Event()
    fd = os.open(path, os.O_RDONLY)
    finishing: list[Future[None]] = []

    def send_one(index: int) -> None:
        if stop.is_set():
            return
        data = os.pread(fd, chunk_size, index * chunk_size)
        last_step = send(index, data)

        def finish() -> None:
            if last_step is not None:
                last_step()
            if on_chunk:
                on_chunk(index, len(data))

        if last_step is None:
            finish()
        else:
            finishing.append(finishers.submit(finish))

    pool = ThreadPoolExecutor(max(1, parallel), thread_name_prefix="aip-upload")
    finishers = ThreadPoolExecutor(max(1, parallel), thread_name_prefix="aip-report")
    try:
        for stage in ([pool.submit(send_one, i) for i in indexes], finishing):
            done, _ = wait(stage, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # re-raise the first failure
            for future in stage:
                future.result()
    finally:
        # On Ctrl-C or an error: no new chunk starts; the ones in flight finish or fail on their own.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        finishers.shutdown(wait=True, cancel_futures=True)
        os.close(fd)
