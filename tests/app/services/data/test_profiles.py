"""Profiles: computed once after a version is created (by the background worker, not the upload request), read in
batches and merged, and equal to a pandas reference on a constructed file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import null, update

from app.core.errors import AipError
from app.db.models import DatasetVersion
from app.db.session import session_scope
from app.services.data import formats, profiles
from tests.utils.data_env import DataEnv


def constructed() -> pd.DataFrame:
    """300 rows; every categorical value has its own frequency, so top values have one right order."""
    rng = np.random.default_rng(7)
    n = rng.normal(50, 12, 300)
    n[::7] = np.nan  # 43 missing
    letters = ["a"] * 120 + ["b"] * 80 + ["c"] * 50 + ["d"] * 30 + [None] * 20
    ks = [1] * 150 + [2] * 90 + [3] * 40 + [9] * 20
    return pd.DataFrame(
        {
            "n": n,
            "k": rng.permutation(ks),
            "s": rng.permutation(np.array(letters, dtype=object)),
            "flag": rng.choice([True, False], 300),
        }
    )


def encoded(frame: pd.DataFrame, kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "jsonl":
        frame.to_json(buffer, orient="records", lines=True, double_precision=15)
    elif kind == "parquet":
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def pandas_read(data: bytes, kind: str) -> pd.DataFrame:
    if kind == "jsonl":
        return pd.read_json(io.BytesIO(data), lines=True, precise_float=True)
    if kind == "parquet":
        return pd.read_parquet(io.BytesIO(data))
    return pd.read_csv(io.BytesIO(data))


def assert_matches_pandas(profile: dict, reference: pd.DataFrame) -> None:
    assert (profile["rows"], profile["columns"]) == reference.shape
    by_name = {c["name"]: c for c in profile["column_profiles"]}
    for name in reference.columns:
        column, series = by_name[name], reference[name]
        present = series.dropna()
        assert column["missing"] == series.isna().sum(), name
        assert column["unique"] == present.nunique(), name
        assert "approximate" not in column
    for name in ("s", "k", "flag"):  # distinct frequencies: one right order
        expected = reference[name].dropna().astype(str).value_counts()
        assert [(t["value"], t["count"]) for t in by_name[name]["top_values"]] == list(expected.items())
    assert [t["count"] for t in by_name["n"]["top_values"]] == [1] * 10
    for name in ("n", "k"):
        present = reference[name].dropna().astype(float)
        column = by_name[name]
        assert (column["min"], column["max"]) == (present.min(), present.max())
        assert column["mean"] == pytest.approx(present.mean(), rel=1e-12)
        assert column["std"] == pytest.approx(present.std(ddof=1), rel=1e-12)
        counts, edges = np.histogram(present, bins=profiles.HISTOGRAM_BINS)
        assert column["histogram"]["counts"] == counts.tolist()
        assert column["histogram"]["edges"] == pytest.approx(edges.tolist(), rel=1e-12)
    assert "mean" not in by_name["s"] and "mean" not in by_name["flag"]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_profile_is_stored_after_creation_and_equals_pandas(fast_env: DataEnv, kind: str) -> None:
    env = fast_env
    data = encoded(constructed(), kind)
    version_id = env.upload(env.dataset(f"profile-{kind}"), f"cells.{kind}", data)
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).profile is None  # the upload did not wait for it

    assert profiles.profile_pending(env.settings, env.store) == 1
    with session_scope(env.settings.database_url) as session:
        stored = session.get_one(DatasetVersion, version_id).profile
    assert_matches_pandas(stored, pandas_read(data, kind))
    assert profiles.profile_pending(env.settings, env.store) == 0  # computed once
    assert profiles.get_profile(env.settings, env.store, user=env.owner, version_id=version_id) == stored


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_small_batches_merge_to_the_same_profile(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"cells.{kind}"
    path.write_bytes(encoded(constructed(), kind))
    _, columns, _ = formats.inspect(path, kind)
    batches = list(profiles.read_batches(path, kind, columns, block_bytes=512))
    assert len(batches) > 5  # really merged from many batches
    assert_matches_pandas(
        profiles.profile_file(path, kind, columns, block_bytes=512), pandas_read(path.read_bytes(), kind)
    )


def test_many_distinct_values_are_estimated_and_flagged(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    ids = rng.permutation(60_000)
    common = np.where(np.arange(60_000) % 10 == 0, "common", [f"v{i}" for i in ids])
    frame = pd.DataFrame({"id": ids, "tag": common})
    path = tmp_path / "wide.parquet"
    frame.to_parquet(path, index=False)
    _, columns, _ = formats.inspect(path, "parquet")
    profile = profiles.profile_file(path, "parquet", columns, block_bytes=64 << 10, distinct_budget=4_000)
    by_name = {c["name"]: c for c in profile["column_profiles"]}
    for name in ("id", "tag"):
        assert by_name[name]["approximate"] is True
        assert by_name[name]["unique"] == pytest.approx(frame[name].nunique(), rel=0.05)
    assert by_name["tag"]["top_values"][0] == {"value": "common", "count": 6000}
    assert by_name["id"]["mean"] == pytest.approx(frame["id"].mean(), rel=1e-12)  # moments stay exact


def test_pending_versions_on_every_backend(data_env: DataEnv) -> None:
    """A version without a profile is found whether its JSON column holds SQL NULL or JSON null; image sets get
    theirs at creation and are never pending."""
    env = data_env
    dataset_id = env.dataset("pending")
    first = env.upload(dataset_id, "a.csv", b"x,y\n1,a\n2,b\n")
    second = env.upload(dataset_id, "b.csv", b"x,y\n3,c\n")
    with session_scope(env.settings.database_url) as session:
        session.execute(update(DatasetVersion).where(DatasetVersion.id == second).values(profile=null()))  # SQL NULL
    assert profiles.profile_pending(env.settings, env.store) == 2
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, first).profile["rows"] == 2
        assert session.get_one(DatasetVersion, second).profile["rows"] == 1
    assert profiles.profile_pending(env.settings, env.store) == 0


def test_read_before_the_worker_computes_it_and_others_see_404(fast_env: DataEnv) -> None:
    env = fast_env
    version_id = env.upload(env.dataset("on-demand"), "d.csv", encoded(constructed(), "csv"))
    with pytest.raises(AipError, match=f"Dataset version {version_id} does not exist"):
        profiles.get_profile(env.settings, env.store, user=env.other, version_id=version_id)
    with session_scope(env.settings.database_url) as session:
        assert session.get_one(DatasetVersion, version_id).profile is None  # a refused read computes nothing
    profile = profiles.get_profile(env.settings, env.store, user=env.owner, version_id=version_id)
    assert profile["rows"] == 300
    assert profiles.profile_pending(env.settings, env.store) == 0  # stored by the read


def test_ties_empty_columns_and_parquet_categories(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "empty": [None] * 6,
            "category": pd.Categorical(["b", "a", "b", "c", "a", "d"]),
            "tie": ["q", "p", "p", "q", "r", "z"],
        }
    )
    path = tmp_path / "odd.parquet"
    frame.to_parquet(path, index=False)
    _, columns, _ = formats.inspect(path, "parquet")
    by_name = {c["name"]: c for c in profiles.profile_file(path, "parquet", columns, block_bytes=64)["column_profiles"]}
    assert (by_name["empty"]["missing"], by_name["empty"]["unique"], by_name["empty"]["top_values"]) == (6, 0, [])
    for name in ("category", "tie"):  # equal counts keep pandas' order: first seen first
        expected = frame[name].astype(str).value_counts()
        assert [(t["value"], t["count"]) for t in by_name[name]["top_values"]] == list(expected.items())


def test_json_lines_mixing_numbers_and_text_profile_as_text(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    records = [{"code": v, "n": i} for i, v in enumerate([1, "two", 3.5, None, 1, "two"] * 50)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    _, columns, _ = formats.inspect(path, "jsonl")
    assert columns[0] == {"name": "code", "dtype": "object", "mixed": True}
    for block in (64, profiles.BLOCK_BYTES):  # batches of a few rows, and one batch
        by_name = {
            c["name"]: c for c in profiles.profile_file(path, "jsonl", columns, block_bytes=block)["column_profiles"]
        }
        code = by_name["code"]
        assert (code["missing"], code["unique"]) == (50, 3)
        assert [(t["value"], t["count"]) for t in code["top_values"]] == [("1", 100), ("two", 100), ("3.5", 50)]
        assert (by_name["n"]["min"], by_name["n"]["max"]) == (0, 299)
