"""Fitted preprocessing against a pandas + scikit-learn reference on the same data: same imputation values, same
bounds, same means and scales, same codes, same rows dropped; and the JSON state applied to raw rows as serving does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from app.services.data.pipeline_ops import PipelineError
from app.services.data.pipeline_transform import fit, transform

FEATURES = {"target": "label", "numeric": ["x", "y", "z"], "categorical": ["colour"]}


def raw_frame(rows: int = 400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(50, 10, rows),
            "y": rng.exponential(3, rows),
            "z": rng.integers(0, 5, rows).astype(float),
            "constant": np.ones(rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "size": rng.choice(["S", "M", "L"], rows),
            "label": rng.choice(["a", "b"], rows),
        }
    )
    frame.loc[rng.choice(rows, 30, replace=False), "x"] = np.nan
    frame.loc[rng.choice(rows, 20, replace=False), "y"] = np.nan
    frame.loc[rng.choice(rows, 10, replace=False), "colour"] = None
    frame.loc[[3, 9], "x"] = [400.0, -300.0]  # outliers
    return frame


def test_impute_clip_scale_encode_match_sklearn() -> None:
    frame = raw_frame()
    steps = [
        {"op": "impute", "strategy": "median", "columns": ["x", "y"]},
        {"op": "impute", "strategy": "most_frequent", "columns": ["colour"]},
        {"op": "outliers", "method": "iqr", "action": "clip", "columns": ["x"]},
        {"op": "scale", "method": "standard", "columns": ["x", "y"]},
        {"op": "scale", "method": "minmax", "columns": ["z"]},
        {"op": "encode", "method": "onehot", "columns": ["colour"]},
        {"op": "encode", "method": "ordinal", "columns": ["size"]},
        {"op": "select", "method": "variance", "threshold": 0.0},
    ]
    state = json.loads(json.dumps(fit(steps, frame, FEATURES)))  # as stored: plain JSON
    out = transform(state, frame)

    ref = frame.copy()
    ref[["x", "y"]] = SimpleImputer(strategy="median").fit_transform(ref[["x", "y"]])
    ref[["colour"]] = SimpleImputer(strategy="most_frequent").fit_transform(ref[["colour"]])
    q1, q3 = np.percentile(ref["x"], [25, 75])
    ref["x"] = ref["x"].clip(q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    standard = StandardScaler().fit(ref[["x", "y"]])
    ref[["x", "y"]] = standard.transform(ref[["x", "y"]])
    ref[["z"]] = MinMaxScaler().fit_transform(ref[["z"]])
    onehot = OneHotEncoder(sparse_output=False).fit(ref[["colour"]])
    encoded = pd.DataFrame(onehot.transform(ref[["colour"]]), columns=onehot.get_feature_names_out(), index=ref.index)
    ref = pd.concat(
        [ref.drop(columns=["colour"]).iloc[:, :4], encoded, ref.drop(columns=["colour"]).iloc[:, 4:]], axis=1
    )
    ref[["size"]] = OrdinalEncoder().fit_transform(ref[["size"]])
    numeric = [c for c in ref.columns if c != "label" and pd.api.types.is_numeric_dtype(ref[c])]
    kept = VarianceThreshold(0.0).fit(ref[numeric]).get_feature_names_out()
    ref = ref[[c for c in ref.columns if c in kept or c not in numeric]]

    assert list(out.columns) == list(ref.columns)
    assert "constant" not in out.columns  # zero variance
    pd.testing.assert_frame_equal(out, ref, check_dtype=False, atol=1e-12, rtol=0)
    scale = next(s for s in state["steps"] if s["op"] == "scale" and "x" in s["params"])
    assert scale["params"]["x"] == pytest.approx([standard.mean_[0], standard.scale_[0]])


def test_drop_steps_drop_the_same_rows_as_pandas() -> None:
    frame = raw_frame()
    steps = [
        {"op": "impute", "strategy": "drop", "columns": ["x"]},
        {"op": "outliers", "method": "zscore", "action": "drop", "threshold": 2.5, "columns": ["x", "y"]},
        {"op": "impute", "strategy": "mean"},
    ]
    out = transform(fit(steps, frame, FEATURES), frame)

    ref = frame.dropna(subset=["x"])
    keep = pd.Series(True, index=ref.index)
    for column in ("x", "y"):
        values = ref[column].dropna()
        low, high = values.mean() - 2.5 * values.std(ddof=0), values.mean() + 2.5 * values.std(ddof=0)
        keep &= ref[column].isna() | ref[column].between(low, high)
    ref = ref[keep]
    ref[["x", "y", "z"]] = SimpleImputer(strategy="mean").fit_transform(ref[["x", "y", "z"]])
    assert list(out.index) == list(ref.index)
    assert 3 not in out.index and 9 not in out.index  # the planted outliers
    pd.testing.assert_frame_equal(out, ref, check_dtype=False, atol=1e-12, rtol=0)


def test_serving_transforms_raw_rows_like_training_and_drops_none() -> None:
    frame = raw_frame()
    steps = [
        {"op": "impute", "strategy": "mean"},
        {"op": "outliers", "method": "iqr", "action": "drop"},
        {"op": "scale", "method": "standard"},
        {"op": "encode", "method": "onehot"},
        {"op": "select", "method": "correlation", "threshold": 0.0},
    ]
    state = fit(steps, frame, FEATURES)
    trained = transform(state, frame)
    raw = frame.drop(columns=["label"]).loc[trained.index[:20]]
    served = transform(state, raw, serving=True)
    pd.testing.assert_frame_equal(served, trained.drop(columns=["label"]).loc[raw.index])
    unseen = raw.head(2).assign(colour=["purple", None], x=[1e6, np.nan])
    served = transform(state, unseen, serving=True)
    assert len(served) == 2  # nothing dropped at serving
    assert served.filter(like="colour_").sum(axis=1).tolist() == [0.0, 0.0]  # unknown/missing: no category
    high = state["steps"][1]["bounds"]["x"][1]
    mean, std = state["steps"][2]["params"]["x"]
    assert served["x"].iloc[0] == pytest.approx((high - mean) / std)  # clipped, then scaled


def test_cast_and_validate() -> None:
    frame = pd.DataFrame({"n": ["1", "2", "3"], "v": [0.5, 2.0, 0.1], "id": [1, 2, 2]})
    state = fit([{"op": "cast", "types": {"n": "int"}}, {"op": "validate", "dtypes": {"n": "int"}}], frame)
    assert transform(state, frame)["n"].tolist() == [1, 2, 3]
    with pytest.raises(PipelineError, match=r"2 .*outside|outside") as err:
        fit([{"op": "validate", "ranges": {"v": [0, 1]}, "unique": ["id"], "dtypes": {"v": "int"}}], frame)
    assert "repeated" in str(err.value) and "expected int" in str(err.value)
    with pytest.raises(PipelineError, match="does not convert"):
        fit([{"op": "cast", "types": {"n": "int"}}], frame.assign(n=["1", "x", "3"]))
    with pytest.raises(PipelineError, match=r"Step 0 \(scale\): columns \['nope'\]"):
        fit([{"op": "scale", "columns": ["nope"]}], frame)
    with pytest.raises(PipelineError, match="use one of"):
        fit([{"op": "explode"}], frame)
