"""Client side of resumable chunked uploads (used by the SDK and the CLI).

Declaring the same file again (name, size, sha256, chunk size) returns the server's open session with the chunks
it already has, so re-running an interrupted upload sends only the missing chunks.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.sdk import Client

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
    client: Client,
    dataset_id: int,
    path: str | Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    parallel: int = DEFAULT_PARALLEL,
    sha256: str | None = None,
    on_session: Callable[[dict[str, Any]], None] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Uploads `path` as a new version of the dataset and returns the version.

    Args:
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
    }
    session = client._call("POST", f"/dataset/{dataset_id}/upload", json=declared)
    if on_session:
        on_session(session)
    base = f"/dataset/{dataset_id}/upload/{session['id']}"
    if not session["content_known"]:
        have = set(session["received"])
        todo = [i for i in range(session["num_chunks"]) if i not in have]
        _send_chunks(client, base, path, chunk_size, todo, parallel, on_chunk)
    return client._call("POST", f"{base}/complete")


def _send_chunks(
    client: Client,
    base: str,
    path: Path,
    chunk_size: int,
    indexes: list[int],
    parallel: int,
    on_chunk: Callable[[int, int], None] | None,
) -> None:
    stop = threading.Event()
    fd = os.open(path, os.O_RDONLY)

    def send(index: int) -> None:
        if stop.is_set():
            return
        data = os.pread(fd, chunk_size, index * chunk_size)
        headers = {"X-Chunk-Sha256": hashlib.sha256(data).hexdigest(), "content-type": "application/octet-stream"}
        client._call("PUT", f"{base}/chunk/{index}", content=data, headers=headers)
        if on_chunk:
            on_chunk(index, len(data))

    pool = ThreadPoolExecutor(max(1, parallel), thread_name_prefix="aip-upload")
    try:
        futures = [pool.submit(send, i) for i in indexes]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()  # re-raise the first failure
        for future in futures:
            future.result()
    finally:
        # On Ctrl-C or an error: no new chunk starts; the ones in flight finish or fail on their own.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(fd)
