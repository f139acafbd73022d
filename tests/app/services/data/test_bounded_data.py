"""Bounded dataset input: text must be UTF-8 (refused naming the line), image zips within caps, shown values clipped."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from app.contracts.formats import CLIPPED, SHOWN_VALUE_CHARS
from app.core.errors import AipError
from app.db.models import DatasetVersion
from app.db.session import session_scope
from app.services.data import formats, profiles, quality_checks
from tests.utils.data_env import DataEnv

ROWS = "".join(f"{i},plain text {i}\n" for i in range(2000)).encode()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The process's temp dir for one test, checked empty afterwards: a refused upload leaves no temp files."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == []


def versions(env: DataEnv) -> int:
    with session_scope(env.settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(DatasetVersion)) or 0


@pytest.mark.parametrize(
    ("name", "data", "line", "offset"),
    [
        ("latin1.csv", b"id,text\n" + ROWS + "1,café\n".encode("latin-1") + ROWS, 2002, 8 + len(ROWS) + 5),
        ("utf16.csv", "id,text\n1,a\n".encode("utf-16"), 1, 0),
        ("cut.jsonl", b'{"a": "x"}\n' * 3 + '{"a": "€"}\n'.encode()[:-4], 4, 33 + 7),
    ],
)
def test_text_that_is_not_utf8_is_refused_naming_the_line(
    fast_env: DataEnv, private_tmp: Path, name: str, data: bytes, line: int, offset: int
) -> None:
    env = fast_env
    dataset_id = env.dataset(f"enc-{name}")
    for chunk_size in (4096, len(data)):  # chunks hashed and checked as they come, and one whole file
        with pytest.raises(AipError) as caught:
            env.upload(dataset_id, name, data, chunk_size=max(chunk_size, 1024))
        assert caught.value.http_status == 422
        assert (caught.value.details["line"], caught.value.details["byte_offset"]) == (line, offset)
        assert f"line {line} " in caught.value.message and "UTF-8" in caught.value.message
    assert versions(env) == 0
    env.assert_no_orphans()


def test_utf8_split_across_chunks_is_accepted(fast_env: DataEnv, tmp_path: Path) -> None:
    env = fast_env
    data = b"id,text\n" + "".join(f"{i},€𝄞é{i}\n" for i in range(3000)).encode()  # 4096 splits characters
    version_id = env.upload(env.dataset("enc-ok"), "ok.csv", data)
    path = tmp_path / "ok.csv"
    path.write_bytes(data)
    assert formats.inspect(path, "csv")[0] == 3000
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).columns[1]["dtype"] == "object"  # text, not binary


def test_an_image_zip_bomb_is_refused_and_stores_nothing(fast_env: DataEnv, private_tmp: Path) -> None:
    env = fast_env
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("cat/1.png", b"\x89PNG small")
        archive.writestr("dog/zeros.png", bytes(64 << 20))  # 64 MiB of zeros in ~64 KiB
    with pytest.raises(AipError) as caught:
        env.upload(env.dataset("images-bomb"), "pets.zip", buffer.getvalue(), chunk_size=1 << 20)
    assert caught.value.http_status == 422 and "AIP_ARCHIVE_MAX_RATIO" in caught.value.message
    assert "dog/zeros.png" in caught.value.message
    assert versions(env) == 0
    env.assert_no_orphans()


def test_profile_values_are_clipped(tmp_path: Path) -> None:
    huge = "x" * (10 << 20)
    path = tmp_path / "big.csv"
    pd.DataFrame({"n": [1, 2, 3], "s": [huge, "short", huge]}).to_csv(path, index=False)
    _, columns, _ = formats.inspect(path, "csv")
    profile = profiles.profile_file(path, "csv", columns)
    tops = next(c for c in profile["column_profiles"] if c["name"] == "s")["top_values"]
    assert tops[0] == {"value": "x" * SHOWN_VALUE_CHARS + CLIPPED, "count": 2}
    assert tops[1] == {"value": "short", "count": 1}


def test_quality_examples_are_clipped() -> None:
    frame = pd.DataFrame({"a": ["y" * 5000, "y" * 5000, "z"]})
    report = quality_checks.check(frame, quality_checks.QualityConfig())
    shown = report["duplicates"]["examples"][0]["values"]["a"]
    assert shown == "y" * SHOWN_VALUE_CHARS + CLIPPED
