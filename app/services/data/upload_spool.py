"""Chunks that come through the API, checked as they arrive, so completion need not read the file back.

Each chunk this process receives is written into its upload's spool file at its offset, and the run of chunks
from the start is hashed and fed to the format check in order (a chunk that arrives early waits in the file until
the ones before it are in). When the last chunk is in, the spool holds the whole file, its sha256 and its format
check: completion uses them and reads nothing back from storage.

A spool lives in this process only. Chunks that went to another API replica, or arrived before a restart, leave
it incomplete; completion then reads the file back as before. At most `MAX_SPOOLS` are kept (the least recently
used one goes first), each only where the temp disk has room for its file beside the others'; a spool never
refuses a chunk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

from app.services.data import formats

MAX_SPOOLS = 4
DISK_MARGIN_BYTES = 1 << 30  # left free on the temp disk after a spool's file

log = logging.getLogger(__name__)


class Spool:
    """One upload's received bytes, and the hash and format check of the first `fed` chunks."""

    def __init__(self, fmt: str, size: int, chunk_size: int) -> None:
        self.size, self.chunk_size = size, chunk_size
        self._dir = Path(tempfile.mkdtemp(prefix="aip-spool-"))
        self.path = self._dir / "data"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        self._ahead: dict[int, str] = {}  # written, waiting for the chunks before them: index -> sha256
        self.fed: list[str] = []  # sha256 of the chunks hashed and checked, in order
        self._digest = hashlib.sha256()
        self.check = formats.StreamCheck(fmt)
        self.touched = time.monotonic()
        self._closed = False

    def add(self, index: int, data: bytes, sha256: str) -> None:
        with self._lock:
            self.touched = time.monotonic()
            if self._closed or index < len(self.fed) or index in self._ahead:
                return  # sent again: the same bytes (its sha256 was checked) are in already
            os.pwrite(self._fd, data, index * self.chunk_size)
            self._ahead[index] = sha256
            while (next_index := len(self.fed)) in self._ahead:
                offset = next_index * self.chunk_size
                block = data if next_index == index else os.pread(self._fd, self.chunk_size, offset)
                self._digest.update(block)
                self.check.feed(block)
                self.fed.append(self._ahead.pop(next_index))

    def holds(self, recorded: list[str]) -> bool:
        """Whether exactly these chunks (their sha256 in order) were hashed and checked."""
        with self._lock:
            return self.fed == recorded

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.check.close()
        os.close(self._fd)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_spools: OrderedDict[str, Spool] = OrderedDict()
_registry = threading.Lock()


def receive(upload_id: str, *, fmt: str, size: int, chunk_size: int, index: int, data: bytes, sha256: str) -> None:
    """Adds a stored chunk (its length and sha256 checked) to its upload's spool, starting one if there is room."""
    evicted: list[Spool] = []
    try:
        with _registry:
            spool = _spools.get(upload_id)
            if spool is None:
                # Room for this file and, counted whole, the files of the other spools.
                reserved = size + sum(other.size for other in _spools.values()) + DISK_MARGIN_BYTES
                if shutil.disk_usage(tempfile.gettempdir()).free < reserved:
                    return
                while len(_spools) >= MAX_SPOOLS:
                    evicted.append(_spools.popitem(last=False)[1])
                spool = _spools[upload_id] = Spool(fmt, size, chunk_size)
            _spools.move_to_end(upload_id)
        for old in evicted:
            old.close()
        spool.add(index, data, sha256)
    except OSError as e:  # e.g. the temp disk filled up: completion reads the file back instead
        log.warning("Upload %s: spooling chunk %d failed (%s); completion reads the file back.", upload_id, index, e)
        drop(upload_id)


def take(upload_id: str, recorded: list[str]) -> Spool | None:
    """The upload's spool, if it hashed and checked exactly the recorded chunks (their sha256 in order); the
    caller closes it. Otherwise None: the spool, if any, is dropped and the file must be read back."""
    with _registry:
        spool = _spools.pop(upload_id, None)
    if spool is None:
        return None
    if spool.holds(recorded):
        return spool
    spool.close()
    return None


def spooled() -> set[str]:
    """The uploads this process holds a spool for."""
    with _registry:
        return set(_spools)


def drop(upload_id: str) -> None:
    with _registry:
        spool = _spools.pop(upload_id, None)
    if spool is not None:
        spool.close()


def drop_idle(max_idle_s: float) -> None:
    """Drops spools no chunk reached for `max_idle_s` (their sessions expire, or went to another replica)."""
    cutoff = time.monotonic() - max_idle_s
    with _registry:
        idle = [upload_id for upload_id, spool in _spools.items() if spool.touched < cutoff]
    for upload_id in idle:
        drop(upload_id)
