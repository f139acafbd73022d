"""Uploaded training code is checked and stored by content without a cluster."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.errors import AipError
from app.services.training import custom_code
from app.storage.local import LocalStore

GOOD = b"def train_loop_per_worker(config):\n    pass\n"
LONG = GOOD + "".join(f"value_{i} = {i * 7919 % 100_003}\n" for i in range(80_000)).encode()  # > 1 MiB of source


def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def test_code_is_stored_once_by_content(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    first = custom_code.store_code(settings(tmp_path), store, file_name="dir/train.py", data=GOOD)
    again = custom_code.store_code(settings(tmp_path), store, file_name="train.py", data=GOOD)
    assert first == again
    assert first.code_hash == hashlib.sha256(GOOD).hexdigest()
    assert custom_code.find(store, first.code_hash) == f"code/{first.code_hash}/train.py"


@pytest.mark.parametrize(
    ("code_hash", "match"),
    [("abc", "64-hex"), ("0" * 64, "does not exist")],
)
def test_unknown_code_is_named(tmp_path: Path, code_hash: str, match: str) -> None:
    with pytest.raises(AipError, match=match):
        custom_code.find(LocalStore(tmp_path), code_hash)


def test_nested_function_does_not_count(tmp_path: Path) -> None:
    with pytest.raises(AipError, match="top-level"):
        nested = b"class A:\n    def train_loop_per_worker(self, config):\n        pass\n"
        custom_code.check(settings(tmp_path), "t.py", nested)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in members.items():
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(data)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_unread_and_stores_nothing(tmp_path: Path) -> None:
    # ~1 MiB zip, 1 GiB train.py: refused from its directory (no 1 GiB unpacked), naming the cap's setting.
    with zipfile.ZipFile(bomb := tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("train.py", "w", force_zip64=True) as member:
            for _ in range(1024):
                member.write(bytes(1 << 20))
    store = LocalStore(tmp_path / "objects")
    with pytest.raises(AipError) as caught:
        custom_code.store_code(settings(tmp_path), store, file_name="bomb.zip", data=bomb.read_bytes())
    assert caught.value.http_status == 413 and "AIP_CODE_MAX_UNPACKED_BYTES" in caught.value.message
    assert list(store.list("code/")) == []


@pytest.mark.parametrize(
    ("file_name", "data", "status", "match"),
    [
        ("t.py", LONG, 413, "AIP_CODE_MAX_SOURCE_BYTES"),
        ("c.zip", zipped({"train.py": LONG}), 413, "AIP_CODE_MAX_SOURCE_BYTES"),
        ("c.zip", zipped({"train.py": GOOD, "pad.bin": bytes(4 << 20)}), 422, "AIP_ARCHIVE_MAX_RATIO"),
        ("c.zip", zipped({"lib.py": GOOD}), 422, "needs a train.py"),
        ("c.zip", b"PK not really a zip", 422, "not a readable zip"),
        ("t.py", b"def train_loop_per_worker(config):\n    return (\n", 422, "line 2"),
        ("t.py", b"\xff\xfe" + GOOD, 422, "not UTF-8"),
    ],
)
def test_bad_code_is_refused_naming_why(tmp_path: Path, file_name: str, data: bytes, status: int, match: str) -> None:
    with pytest.raises(AipError) as caught:
        custom_code.check(settings(tmp_path), file_name, data)
    assert caught.value.http_status == status and match in caught.value.message


def test_a_zip_with_helpers_is_accepted(tmp_path: Path) -> None:
    custom_code.check(settings(tmp_path), "c.zip", zipped({"train.py": GOOD, "helpers/util.py": b"X = 1\n" * 50}))


def test_the_upload_cap_comes_from_the_settings(tmp_path: Path) -> None:
    small = Settings(data_dir=tmp_path / "data", code_max_upload_bytes=1024)
    with pytest.raises(AipError, match="AIP_CODE_MAX_UPLOAD_BYTES") as caught:
        custom_code.check(small, "t.py", GOOD + b"#" * 2000)
    assert caught.value.http_status == 413
