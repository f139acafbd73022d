"""Zip archives from users, inspected before anything unpacks them.

The central directory is walked record by record (constant memory, whatever it claims) and its entry count,
unpacked size and compression ratios are checked against caps before `zipfile` loads it; then every member is
read through once in blocks, so a damaged member (bad CRC, unsupported compression, encryption) is refused at
upload, not in a training worker. `zipfile` never reads past a member's declared size, so the declared sizes that
passed the caps bound what any later unpack of the same bytes does.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from app.core.config import Settings
from app.core.errors import invalid, too_large

BLOCK_BYTES = 1 << 20
RATIO_MIN_BYTES = 1 << 20  # smaller members (and archives) are not ratio-checked: tiny files compress wildly
_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # one central directory record (46 bytes before its name)
_ENTRY_SIGNATURE, _END_SIGNATURE = b"PK\x01\x02", b"PK\x05\x06"
_END64_LOCATOR_SIGNATURE, _END64_SIGNATURE = b"PK\x06\x07", b"PK\x06\x06"
_ZIP64_EXTRA = 0x0001
_MAX32 = 0xFFFFFFFF


@dataclass(frozen=True)
class ZipLimits:
    what: str  # how refusals name the archive, e.g. "code zip"
    max_entries: int
    max_unpacked_bytes: int
    max_ratio: float
    entries_setting: str  # the AIP_* variables that set the caps, named in refusals
    unpacked_setting: str


def code_limits(settings: Settings) -> ZipLimits:
    return ZipLimits(
        "code zip",
        settings.code_max_entries,
        settings.code_max_unpacked_bytes,
        settings.archive_max_ratio,
        "AIP_CODE_MAX_ENTRIES",
        "AIP_CODE_MAX_UNPACKED_BYTES",
    )


def image_limits(settings: Settings) -> ZipLimits:
    return ZipLimits(
        "image zip",
        settings.image_zip_max_entries,
        settings.image_zip_max_unpacked_bytes,
        settings.archive_max_ratio,
        "AIP_IMAGE_ZIP_MAX_ENTRIES",
        "AIP_IMAGE_ZIP_MAX_UNPACKED_BYTES",
    )


@contextmanager
def open_checked(f: IO[bytes], limits: ZipLimits) -> Iterator[zipfile.ZipFile]:
    """The zip in `f`, opened once its directory is within `limits` and every member has been read back intact.

    Raises:
        AipError: 413 naming the setting when a cap is exceeded; 422 for a zip bomb's ratio or a damaged zip.
    """
    check_directory(f, limits)
    try:
        with zipfile.ZipFile(f) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    with archive.open(info) as member:
                        while member.read(BLOCK_BYTES):
                            pass
            yield archive
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as e:
        # RuntimeError: an encrypted member; NotImplementedError: a compression method zipfile cannot read.
        raise invalid(f"The {limits.what} is not readable: {e}. Zip the files again (no password).") from e


def check_directory(f: IO[bytes], limits: ZipLimits) -> None:
    """Walks the central directory, refusing the zip at the first record that breaks a cap."""
    start, size = _directory(f, limits.what)
    f.seek(0, 2)
    archive_bytes = f.tell()
    f.seek(start)
    entries = unpacked = read = 0
    while read < size:
        header = f.read(_ENTRY.size)
        if len(header) < _ENTRY.size or header[:4] != _ENTRY_SIGNATURE:
            raise invalid(f"The {limits.what} has a damaged central directory; zip the files again.")
        fields = _ENTRY.unpack(header)
        name_len, extra_len, comment_len = fields[12], fields[13], fields[14]
        name = f.read(name_len).decode("utf-8", "replace")
        extra = f.read(extra_len)
        f.seek(comment_len, 1)
        read += _ENTRY.size + name_len + extra_len + comment_len
        packed, member_bytes = _sizes(fields[10], fields[11], extra)
        entries += 1
        unpacked += member_bytes
        if entries > limits.max_entries:
            raise too_large(
                f"The {limits.what} has more than {limits.max_entries} entries, the most {limits.entries_setting} "
                "allows; pack fewer files (or ask an admin to raise the setting).",
                setting=limits.entries_setting,
                limit=limits.max_entries,
            )
        if unpacked > limits.max_unpacked_bytes:
            raise too_large(
                f"The {limits.what} unpacks to more than {limits.max_unpacked_bytes} bytes, the most "
                f"{limits.unpacked_setting} allows; leave large files out of it.",
                setting=limits.unpacked_setting,
                limit=limits.max_unpacked_bytes,
            )
        if member_bytes > RATIO_MIN_BYTES and member_bytes > limits.max_ratio * max(packed, 1):
            raise _bomb(limits, f"member {name!r} unpacks to {member_bytes} bytes from {packed}")
    if unpacked > RATIO_MIN_BYTES and unpacked > limits.max_ratio * max(archive_bytes, 1):
        raise _bomb(limits, f"unpacks to {unpacked} bytes from {archive_bytes}")


def _bomb(limits: ZipLimits, what: str) -> Exception:
    return invalid(
        f"The {limits.what} {what}: more than {limits.max_ratio:g} times smaller packed (AIP_ARCHIVE_MAX_RATIO), "
        "which real files do not compress to; it looks like a zip bomb. Zip the real files.",
        setting="AIP_ARCHIVE_MAX_RATIO",
        limit=limits.max_ratio,
    )


def _directory(f: IO[bytes], what: str) -> tuple[int, int]:
    """Where the central directory starts, and its size, from the end record (ZIP64's where it has one).
    Measured back from the end record, as zipfile does, so data prepended to the zip shifts nothing."""
    f.seek(0, 2)
    file_size = f.tell()
    tail_size = min(file_size, _END.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    f.seek(file_size - tail_size)
    tail = f.read(tail_size)
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or tail_size - at < _END.size:
        raise invalid(f"The {what} is not a readable zip (it has no end of central directory); send a .zip file.")
    end_at = file_size - tail_size + at
    size = _END.unpack_from(tail, at)[5]
    if at >= _END64_LOCATOR.size:
        signature, *_ = _END64_LOCATOR.unpack_from(tail, at - _END64_LOCATOR.size)
        if signature == _END64_LOCATOR_SIGNATURE:
            end64_at = end_at - _END64_LOCATOR.size - _END64.size
            f.seek(max(end64_at, 0))
            record = f.read(_END64.size)
            if len(record) == _END64.size and record[:4] == _END64_SIGNATURE:
                size, end_at = _END64.unpack(record)[8], end64_at
    if size > end_at:
        raise invalid(f"The {what} has a damaged central directory; zip the files again.")
    return end_at - size, size


def _sizes(packed: int, unpacked: int, extra: bytes) -> tuple[int, int]:
    """A record's packed and unpacked sizes, from its ZIP64 extra field where the 32-bit fields overflow."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == _ZIP64_EXTRA:
            values = list(struct.unpack_from(f"<{min(length, len(extra) - at - 4) // 8}Q", extra, at + 4))
            if unpacked == _MAX32 and values:
                unpacked = values.pop(0)
            if packed == _MAX32 and values:
                packed = values.pop(0)
            break
        at += 4 + length
    return packed, unpacked
