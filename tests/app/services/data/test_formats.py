"""Dataset formats through a real upload: CSV, JSON lines, Parquet, class-folder zips; profiles; refused layouts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.core.errors import AipError
from app.db.models import DatasetVersion, TrainingJob
from app.db.session import session_scope
from app.services.data import datasets, formats, profiles
from tests.utils.data_env import DataEnv


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    out = pd.DataFrame({"n": rng.normal(size=50), "k": rng.integers(0, 4, 50), "s": rng.choice(["u", "v"], 50)})
    out.loc[::10, "n"] = np.nan
    return out


def encoded(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "jsonl":
        frame().to_json(buffer, orient="records", lines=True)
    elif kind == "parquet":
        frame().to_parquet(buffer, index=False)
    else:
        frame().to_csv(buffer, index=False)
    return buffer.getvalue()


def zipped(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"\x89PNG fake image bytes")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_tabular_formats_and_their_profile(fast_env: DataEnv, kind: str) -> None:
    env = fast_env
    version_id = env.upload(env.dataset(f"fmt-{kind}"), f"data.{kind}", encoded(kind))
    with session_scope(env.settings.database_url) as session:
        version = session.get_one(DatasetVersion, version_id)
        assert (version.format, version.num_rows) == (kind, 50)
        assert [c["name"] for c in version.columns] == ["n", "k", "s"]
        assert version.columns[0]["dtype"] == "float64" and version.columns[2]["dtype"] == "object"
    profile = profiles.get_profile(env.settings, env.store, user=env.owner, version_id=version_id)
    expected = frame()
    by_name = {c["name"]: c for c in profile["column_profiles"]}
    assert by_name["n"]["missing"] == 5 and by_name["n"]["mean"] == pytest.approx(expected["n"].mean())
    assert (by_name["k"]["min"], by_name["k"]["max"]) == (expected["k"].min(), expected["k"].max())
    assert {t["value"]: t["count"] for t in by_name["s"]["top_values"]} == expected["s"].value_counts().to_dict()
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).profile == profile  # stored once


def test_image_zip_of_class_folders(fast_env: DataEnv) -> None:
    env = fast_env
    names = ["pets/cat/1.png", "pets/cat/2.jpg", "pets/dog/1.png", "pets/"]
    version_id = env.upload(env.dataset("images"), "pets.zip", zipped(names))
    profile = profiles.get_profile(env.settings, env.store, user=env.owner, version_id=version_id)
    assert profile["classes"] == {"cat": 2, "dog": 1} and profile["rows"] == 3


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["../evil/1.png", "cat/2.png"], "unsafe path"),
        (["/abs/1.png"], "unsafe path"),
        (["loose.png"], "not in a class folder"),
        (["cat/notes.txt"], "not an image"),
        (["cat/"], "no images"),
    ],
)
def test_bad_zip_layouts_are_refused(fast_env: DataEnv, names: list[str], match: str) -> None:
    env = fast_env
    with pytest.raises(AipError, match=match):
        env.upload(env.dataset("bad-zip"), "x.zip", zipped(names))
    assert env.stored_keys() == set()


def test_versions_used_by_training_cannot_be_deleted(fast_env: DataEnv) -> None:
    env = fast_env
    dataset_id = env.dataset("in-use")
    version_id = env.upload(dataset_id, "d.csv", encoded("csv"))
    with session_scope(env.settings.database_url) as session:
        session.add(
            TrainingJob(name="j", owner_id=env.owner.id, dataset_version_id=version_id, template="t", config={})
        )
    with pytest.raises(AipError, match="used by training jobs"):
        datasets.delete_version(env.settings, env.store, user=env.owner, version_id=version_id)
    with pytest.raises(AipError, match="used by training jobs"):
        datasets.delete_dataset(env.settings, env.store, user=env.owner, dataset_id=dataset_id)
    with session_scope(env.settings.database_url) as session:
        assert env.store.exists(session.get_one(DatasetVersion, version_id).storage_key)
    env.assert_no_orphans()


def _checked_as_streamed(path: Path, fmt: str, block: int) -> object:
    """What a streaming check says of the file fed in `block`-byte pieces (or the refusal's message)."""
    data = path.read_bytes()
    try:
        with formats.StreamCheck(fmt) as check:
            for start in range(0, len(data), block):
                check.feed(data[start : start + block])
            return check.result(path)
    except AipError as e:
        return e.message


def _checked(path: Path, fmt: str) -> object:
    try:
        return formats.inspect(path, fmt)
    except AipError as e:
        return e.message


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("csv", encoded("csv")),
        ("csv", b"a,b\n" + b"1,2\n" * 200_000 + b"x,2\n"),  # a type change after the first block: pandas decides
        ("csv", b"a,b\n"),
        ("csv", b"a,b\n1,2,3\n"),
        ("csv", b""),
        ("jsonl", encoded("jsonl")),
        ("jsonl", b"not json\n"),
        ("jsonl", b'{"a": 1, "b": 2}\n{"a": "x", "b": 3}\n'),  # mixed values in a column: kept, as text
        ("parquet", encoded("parquet")),
        ("parquet", b"junk"),
    ],
)
def test_streaming_check_agrees_with_the_check_of_the_file(tmp_path: Path, fmt: str, data: bytes) -> None:
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(data)
    expected = _checked(path, fmt)
    for block in (1000, 1 << 20, 64 << 20):
        assert _checked_as_streamed(path, fmt, block) == expected


def test_a_column_of_mixed_values_is_kept_as_text(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"a": 1, "b": 2}\n{"a": "x", "b": 3}\n')
    rows, columns, _ = formats.inspect(path, "jsonl")
    assert rows == 2 and columns == [{"name": "a", "dtype": "object", "mixed": True}, {"name": "b", "dtype": "int64"}]


def test_json_lines_read_in_python_take_the_recorded_types() -> None:
    columns = [{"name": "a", "dtype": "object", "mixed": True}, {"name": "n", "dtype": "float64"}]
    lines = [b'{"a": 1, "n": 2}', b"", b'{"a": "x", "extra": [1]}', b'{"a": {"k": true}, "n": 0.5}']
    table = formats.json_lines_table(lines, columns)
    assert table.to_pydict() == {"a": ["1", "x", '{"k": true}'], "n": [2.0, None, 0.5]}
    with pytest.raises(AipError, match="Line 3 is not JSON"):
        formats.json_lines_table([b'{"a": 1}', b"{}", b"{oops"], columns)
    with pytest.raises(AipError, match="Line 1 is not a JSON object"):
        formats.json_lines_table([b"[1, 2]"], columns)
    with pytest.raises(AipError, match="Column 'n' holds a value that is not float64"):
        formats.json_lines_table([b'{"n": "many"}'], columns)


def test_streaming_check_stops_early_on_bad_input_and_can_be_abandoned(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2,3\n" + b"4,5\n" * 100_000)
    with formats.StreamCheck("csv") as check:
        check.feed(b"a,b\n1,2,3\n")
        rows = b"4,5\n" * (1 << 18)
        for _ in range(100):  # 100 MiB, far more than its queue holds: a parser that stopped takes no more
            check.feed(rows)
        with pytest.raises(AipError, match="not a readable CSV"):
            check.result(path)
    with formats.StreamCheck("csv") as check:  # a read that failed midway: leaving the block ends the parser
        check.feed(b"a,b\n1,2\n")
