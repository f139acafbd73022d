"""Zip archives are inspected within caps before anything unpacks them, and read back intact."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from app.core.errors import AipError
from app.services import archives

MIB = 1 << 20
LIMITS = archives.ZipLimits("test zip", 20, 8 * MIB, 100.0, "AIP_TEST_ENTRIES", "AIP_TEST_UNPACKED")


def zipped(members: dict[str, bytes], *, zip64: bool = False, prefix: bytes = b"") -> io.BytesIO:
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "a" if prefix else "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in members.items():
            with archive.open(name, "w", force_zip64=zip64) as member:
                member.write(data)
    buffer.seek(0)
    return buffer


def refusal(f: io.BytesIO, limits: archives.ZipLimits = LIMITS) -> AipError:
    with pytest.raises(AipError) as caught, archives.open_checked(f, limits):
        pass
    return caught.value


def test_a_zip_within_the_caps_opens() -> None:
    members = {"a/1.bin": os.urandom(3 * MIB), "a/2.txt": b"hello " * 1000, "b/": b""}
    with archives.open_checked(zipped(members, zip64=True), LIMITS) as archive:
        assert archive.read("a/2.txt") == members["a/2.txt"]


def test_unpacked_size_over_the_cap_is_413_naming_the_setting() -> None:
    error = refusal(zipped({"big.bin": b"\0" * (9 * MIB)}))
    assert error.http_status == 413
    assert "AIP_TEST_UNPACKED" in error.message and error.details["limit"] == 8 * MIB


def test_zip64_sizes_are_read_from_the_extra_field() -> None:
    # Random bytes do not compress: only the ZIP64 size read right tells 3 MiB (fits) from 9 MiB (refused).
    assert refusal(zipped({"x.bin": os.urandom(9 * MIB)}, zip64=True)).http_status == 413
    with archives.open_checked(zipped({"x.bin": os.urandom(3 * MIB)}, zip64=True), LIMITS):
        pass


def test_too_many_entries_is_413_naming_the_setting() -> None:
    error = refusal(zipped({f"f{i}.txt": b"x" for i in range(21)}))
    assert error.http_status == 413 and "AIP_TEST_ENTRIES" in error.message


def test_a_member_that_compresses_like_a_bomb_is_422() -> None:
    roomy = archives.ZipLimits("test zip", 20, 1 << 40, 100.0, "E", "U")
    error = refusal(zipped({"zeros.png": b"\0" * (4 * MIB)}), roomy)
    assert error.http_status == 422 and "AIP_ARCHIVE_MAX_RATIO" in error.message and "zeros.png" in error.message


def test_many_small_members_that_compress_like_a_bomb_are_422() -> None:
    # Each member is under the per-member threshold; together they unpack to 100+ times the archive.
    roomy = archives.ZipLimits("test zip", 100, 1 << 40, 100.0, "E", "U")
    error = refusal(zipped({f"z{i}.bin": b"\0" * (MIB - 1) for i in range(12)}), roomy)
    assert error.http_status == 422 and "AIP_ARCHIVE_MAX_RATIO" in error.message


def test_a_damaged_member_is_422() -> None:
    data = bytearray(zipped({"a.txt": os.urandom(4096)}).getvalue())
    data[100] ^= 0xFF  # inside the member's data: its CRC no longer matches
    error = refusal(io.BytesIO(bytes(data)))
    assert error.http_status == 422 and "not readable" in error.message


def test_not_a_zip_is_422() -> None:
    assert "not a readable zip" in refusal(io.BytesIO(b"just text, no zip" * 10)).message


def test_data_before_the_zip_moves_nothing() -> None:
    # A self-extracting zip: the directory is found back from the end record, as zipfile does.
    with archives.open_checked(zipped({"a.txt": b"x" * 100}, prefix=b"#!/bin/sh\n" * 50), LIMITS) as archive:
        assert archive.namelist() == ["a.txt"]
