"""Streaming fit over Ray blocks against the one-frame fit (itself checked against pandas + scikit-learn in
tests/app/services/test_pipeline_transform.py): uneven blocks, statistics merged across them, the same rows dropped,
the same output written, and a step's error surfacing with its message. A CSV or JSON lines file parsed in byte
ranges, or a Parquet file read by runs of row groups, and staged on disk fits and writes exactly as Ray Data's
one-task read does."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from app.core.config import Settings
from app.db.models import DatasetVersion
from app.services.data import formats
from app.services.data.data_io import read_version
from app.services.data.pipeline_ops import PipelineError
from app.services.data.pipeline_transform import fit_source, fit_transform
from app.services.data.quality_checks import plain_frame
from tests.app.services.data.test_pipeline_transform import FEATURES, raw_frame
from tests.utils.seaweedfs import seaweedfs_server
from train_jobs import staged_input as staged_module
from train_jobs.preprocess import fit_and_write
from train_jobs.staged_input import NotStaged, SplitInsideQuotes, staged_input
from train_jobs.streaming_fit import BlockSource

pytestmark = pytest.mark.ray

STEPS = [
    {"op": "impute", "strategy": "median", "columns": ["x", "y"]},
    {"op": "impute", "strategy": "most_frequent", "columns": ["colour"]},
    {"op": "outliers", "method": "iqr", "action": "drop", "columns": ["x"]},
    {"op": "outliers", "method": "zscore", "action": "clip", "threshold": 2.0, "columns": ["y"]},
    {"op": "impute", "strategy": "drop", "columns": ["note"]},
    {"op": "scale", "method": "standard", "columns": ["x", "y"]},
    {"op": "scale", "method": "minmax", "columns": ["z"]},
    {"op": "encode", "method": "onehot", "columns": ["colour"]},
    {"op": "encode", "method": "ordinal", "columns": ["size"]},
    {"op": "select", "method": "variance", "threshold": 0.0},
    {"op": "validate", "dtypes": {"n": "float", "size": "float"}, "ranges": {"z": [0, 1]}},
]


def arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as a reader gives it: Arrow types only, no pandas metadata."""
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def uneven_blocks(frame: pd.DataFrame, cuts: list[int]) -> list[ray.ObjectRef]:
    table = arrow(frame)
    bounds = [0, *cuts, len(frame)]
    return [ray.put(table.slice(a, b - a)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def data() -> pd.DataFrame:
    frame = raw_frame(3000)
    frame["n"] = np.arange(len(frame), dtype=float)
    frame.loc[2900, "n"] = np.nan  # an integer column with one missing value, in the last block only
    frame["note"] = pd.Series(["kept"] * len(frame), dtype=object)
    frame.loc[10:20, "note"] = None  # rows the drop step removes, in the first block
    frame.loc[:, "colour"] = frame["colour"].astype(object)
    frame.loc[:5, "colour"] = None  # the first block has no colour at all
    frame["memo"] = pd.Series([None] * 1401 + ["m"] * (len(frame) - 1401), dtype=object)  # text only later
    return frame


def assert_state_equal(got: Any, expected: Any) -> None:
    """Equal, floats to 1e-12 relative (sums merged across blocks round differently in the last bits)."""
    if isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for key in expected:
            assert_state_equal(got[key], expected[key])
    elif isinstance(expected, list):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_state_equal(g, e)
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)
    else:
        assert got == expected


def test_blocks_fit_and_write_like_one_frame(ray_driver: None, tmp_path: Path) -> None:
    frame = data()
    frame["n"] = frame["n"].astype(object).where(frame["n"].notna(), None)  # arrow: int64 with a null
    frame["n"] = pd.array(frame["n"], dtype="Int64")
    source = BlockSource(uneven_blocks(frame, [6, 7, 1400, 1401, 2500]))
    state = json.loads(json.dumps(fit_source(STEPS, source, FEATURES)))
    out_path = tmp_path / "out.parquet"
    rows = source.write_parquet(state, out_path)

    reference_frame = plain_frame(arrow(frame).to_pandas())  # one frame
    expected_state, expected = fit_transform(STEPS, reference_frame, FEATURES)
    assert_state_equal(state, json.loads(json.dumps(expected_state)))
    median = state["steps"][0]["values"]
    assert median == expected_state["steps"][0]["values"]  # order statistics: exact, not approximately
    assert state["steps"][2]["bounds"] == expected_state["steps"][2]["bounds"]

    produced = plain_frame(pd.read_parquet(out_path))
    assert rows == len(expected) == len(produced)
    assert len(produced) < len(frame) - 11  # the drop steps removed rows (missing notes, outliers of x)
    assert list(produced.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(produced, expected.reset_index(drop=True), check_dtype=False, atol=1e-12, rtol=0)
    assert produced["n"].dtype == np.float64  # float in every block, as in the one frame
    assert produced["memo"].iloc[-1] == "m" and produced["memo"].iloc[0] is None  # typed by a later block


def test_a_step_error_in_a_later_block_is_the_steps_message(ray_driver: None) -> None:
    frame = pd.DataFrame({"n": ["1", "2", "3", "4", "x", "6"]})
    source = BlockSource(uneven_blocks(frame, [2, 4]))
    with pytest.raises(PipelineError, match=r"Step 0 \(cast\): column 'n' does not convert to int"):
        fit_source([{"op": "cast", "types": {"n": "int"}}], source)


def csv_version(tmp_path: Path, frame: pd.DataFrame) -> tuple[Settings, DatasetVersion]:
    store = tmp_path / "store"
    store.mkdir()
    frame.to_csv(store / "data.csv", index=False)
    settings = Settings(data_dir=tmp_path / "settings", storage_url=f"file://{store}")
    version = DatasetVersion(id=0, format="csv", storage_key="data.csv", columns=[{"name": c} for c in frame.columns])
    return settings, version


def test_a_csv_parsed_in_byte_ranges_fits_and_writes_like_ray_datas_read(
    ray_driver: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = data().drop(columns=["memo"])  # a text column empty in the first block fails either reader
    frame.loc[7, "size"] = 'say "M", or L'  # a quoted cell with a comma
    settings, version = csv_version(tmp_path, frame)
    monkeypatch.setattr(staged_module, "MIN_RANGE_BYTES", 1000)
    monkeypatch.setattr(staged_module, "RANGE_BYTES", 7000)  # ~20 ranges, cut inside lines
    steps = [s for s in STEPS if s["op"] != "validate"]
    with staged_input(settings, version, cpus=2) as staged:
        assert len(staged.parts) > 10
        scratch = {str(Path(p.path).parent) for p in staged.parts}
        state = json.loads(json.dumps(fit_and_write(settings, version, steps, FEATURES, tmp_path / "staged.parquet")))

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    blocks = read_version(settings, version).materialize().to_arrow_refs()
    source = BlockSource(blocks)  # Ray Data's read: one task, blocks in the object store
    expected_state = json.loads(json.dumps(fit_source(steps, source, FEATURES)))
    source.write_parquet(expected_state, tmp_path / "ray_data.parquet")

    assert_state_equal(state, expected_state)  # means: merged over other groups, equal to the last bits or so
    assert [s.get("values") for s in state["steps"][:2]] == [s.get("values") for s in expected_state["steps"][:2]]
    assert state["steps"][2]["bounds"] == expected_state["steps"][2]["bounds"]  # order statistics: exact
    produced, expected = pd.read_parquet(tmp_path / "staged.parquet"), pd.read_parquet(tmp_path / "ray_data.parquet")
    pd.testing.assert_frame_equal(produced, expected, atol=1e-12, rtol=0)
    assert len(produced) > 2500
    assert not any(Path(d).exists() for d in scratch)  # the staged parts are removed


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "jsonl-mixed"])
def test_parquet_and_json_lines_are_staged_in_pieces_and_fit_like_ray_datas_read(
    ray_driver: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    frame = data().drop(columns=["memo"])
    if fmt == "jsonl-mixed":  # numbers and text in one column: read in Python, values as their JSON text
        frame["code"] = pd.Series([i if i % 3 else f"c{i}" for i in range(len(frame))], dtype=object)
    store = tmp_path / "store"
    store.mkdir()
    path = store / f"data.{fmt.split('-')[0]}"
    if fmt == "parquet":
        pq.write_table(arrow(frame), path, row_group_size=250)  # 12 row groups
    else:
        frame.to_json(path, orient="records", lines=True, double_precision=15)
    settings = Settings(data_dir=tmp_path / "settings", storage_url=f"file://{store}")
    _, columns, _ = formats.inspect(path, path.suffix[1:])
    version = DatasetVersion(id=0, format=path.suffix[1:], storage_key=path.name, columns=columns)
    monkeypatch.setattr(staged_module, "MIN_RANGE_BYTES", 1000)
    monkeypatch.setattr(staged_module, "RANGE_BYTES", 40_000)
    monkeypatch.setattr(staged_module, "PART_ROWS", 200)  # pieces are cut into parts of 200 rows
    steps = [s for s in STEPS if s["op"] != "validate"]
    with staged_input(settings, version, cpus=2) as staged:
        assert len(staged.parts) >= 15 and max(p.rows for p in staged.parts) <= 200
        state = json.loads(json.dumps(fit_and_write(settings, version, steps, FEATURES, tmp_path / "staged.parquet")))

    source = BlockSource(read_version(settings, version).materialize().to_arrow_refs())  # Ray Data's read
    expected_state = json.loads(json.dumps(fit_source(steps, source, FEATURES)))
    source.write_parquet(expected_state, tmp_path / "ray_data.parquet")
    assert_state_equal(state, expected_state)
    produced, expected = pd.read_parquet(tmp_path / "staged.parquet"), pd.read_parquet(tmp_path / "ray_data.parquet")
    pd.testing.assert_frame_equal(produced, expected, atol=1e-12, rtol=0)
    assert len(produced) > 2500
    if fmt == "jsonl-mixed":
        assert produced["code"].tolist()[:3] == ["c0", "1", "2"]


def test_nested_json_lines_are_read_whole(ray_driver: None, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    path = store / "data.jsonl"
    path.write_text("".join(json.dumps({"x": i / 7, "tags": {"k": i}}) + "\n" for i in range(500)))
    settings = Settings(data_dir=tmp_path / "settings", storage_url=f"file://{store}")
    version = DatasetVersion(id=0, format="jsonl", storage_key=path.name, columns=formats.inspect(path, "jsonl")[1])
    with pytest.raises(NotStaged, match="nested"), staged_input(settings, version, cpus=2):
        pass
    state = fit_and_write(settings, version, [{"op": "scale", "columns": ["x"]}], {}, tmp_path / "out.parquet")
    assert state["steps"][0]["params"]["x"][0] == pytest.approx(np.arange(500).mean() / 7, rel=1e-12)


def test_a_csv_that_does_not_parse_says_where(ray_driver: None, tmp_path: Path) -> None:
    settings, version = csv_version(tmp_path, pd.DataFrame({"a": [1.5] * 5000, "b": ["x"] * 5000}))
    path = tmp_path / "store" / "data.csv"
    path.write_text(path.read_text() + "1.0,y,surplus\n")
    with pytest.raises(PipelineError, match="the CSV file does not parse"):
        fit_and_write(settings, version, [{"op": "scale", "columns": ["a"]}], {}, tmp_path / "out.parquet")


def test_a_csv_in_s3_is_read_in_byte_ranges(ray_driver: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"a": np.arange(3000) / 7, "b": [f"v{i % 5}" for i in range(3000)]})
    monkeypatch.setattr(staged_module, "MIN_RANGE_BYTES", 1000)
    monkeypatch.setattr(staged_module, "RANGE_BYTES", 5000)
    with seaweedfs_server() as s3:
        client = s3.client()
        client.make_bucket("aip-staged")
        body = frame.to_csv(index=False).encode()
        client.put_object("aip-staged", "data/data.csv", io.BytesIO(body), len(body))
        settings = Settings(
            data_dir=tmp_path / "settings",
            storage_url="s3://aip-staged/data",
            s3_endpoint=s3.endpoint,
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
        )
        version = DatasetVersion(id=0, format="csv", storage_key="data.csv", columns=[{"name": "a"}, {"name": "b"}])
        with staged_input(settings, version, cpus=2) as staged:
            assert len(staged.parts) > 5
            read = pa.concat_tables(ray.get([_read_part.remote(p.path) for p in staged.parts]))
    pd.testing.assert_frame_equal(read.to_pandas(), frame)


@ray.remote
def _read_part(path: str) -> pa.Table:
    return staged_module.read_staged(path)


def test_text_with_line_breaks_is_not_cut_but_read_from_the_start(
    ray_driver: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame({"x": np.arange(400) / 3, "note": [f"line one\nline two, {i}\n" * 20 for i in range(400)]})
    settings, version = csv_version(tmp_path, frame)
    monkeypatch.setattr(staged_module, "MIN_RANGE_BYTES", 1000)
    monkeypatch.setattr(staged_module, "RANGE_BYTES", 5000)
    with pytest.raises(SplitInsideQuotes), staged_input(settings, version, cpus=2):
        pass
    state = fit_and_write(settings, version, [{"op": "scale", "columns": ["x"]}], {}, tmp_path / "out.parquet")
    produced = pd.read_parquet(tmp_path / "out.parquet")
    assert produced["note"].tolist() == frame["note"].tolist()
    assert state["steps"][0]["params"]["x"][0] == pytest.approx(frame["x"].mean(), rel=1e-12)
