"""Streaming fit over Ray blocks against the one-frame fit (itself checked against pandas + scikit-learn in
tests/app/services/test_pipeline_transform.py): uneven blocks, statistics merged across them, the same rows dropped,
the same output written, and a step's error surfacing with its message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import ray

from app.cluster.platform import RunningPlatform
from app.core.config import Settings
from app.services.pipeline_transform import PipelineError, fit_source, fit_transform
from app.services.quality_checks import plain_frame
from tests.app.services.test_pipeline_transform import FEATURES, raw_frame
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


@pytest.fixture(scope="module")
def ray_driver(running_platform: RunningPlatform, platform_settings: Settings) -> Iterator[None]:
    ray.init(address=platform_settings.gcs_address, log_to_driver=False)
    yield
    ray.shutdown()


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
