"""Preprocessing steps: their specs, and applying fitted steps to rows (training and serving alike).

Step specs (each a dict with "op"):
  impute    columns?, strategy: mean|median|most_frequent|constant|drop, fill_value (constant)
  outliers  columns?, method: iqr|zscore, action: clip|drop, factor (iqr, 1.5), threshold (zscore, 3.0)
  cast      types: {column: int|float|str|bool}
  encode    columns?, method: ordinal|onehot
  scale     columns?, method: standard|minmax
  select    columns (explicit) | method: variance (threshold) | method: correlation (threshold, target?)
  validate  dtypes: {column: numeric|int|float|str|bool}, ranges: {column: [min, max]}, unique: [columns]
Without "columns", a step takes the dataset's feature configuration: numeric steps its numeric features,

Fitting the steps is `pipeline_fit`; `pipeline_transform` fits a whole pipeline on a source and applies it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

OPS = ("impute", "outliers", "cast", "encode", "scale", "select", "validate")
CAST_TYPES = {"int": "int64", "float": "float64", "str": "object", "bool": "bool"}


class PipelineError(ValueError):
    """The pipeline does not fit the data; the message says what to change."""


def apply_steps(steps: list[dict[str, Any]], frame: pd.DataFrame, *, serving: bool = False) -> pd.DataFrame:
    for step in steps:
        frame = apply_step(step, frame, serving=serving)
    return frame


def input_columns_for(steps: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """The input columns that decide `columns` after the fitted `steps`: the columns themselves (every step is
    column-wise), the sources of one-hot columns, and the columns any row-dropping step tests."""
    needed = set(columns)
    for step in reversed(steps):
        if step["op"] == "impute" and step["strategy"] == "drop":
            needed |= set(step["columns"])
        elif step["op"] == "outliers" and step["action"] == "drop":
            needed |= set(step["bounds"])
        elif step["op"] == "encode" and step["method"] == "onehot":
            for column, categories in step["categories"].items():
                if needed & {f"{column}_{v}" for v in categories}:
                    needed.add(column)
    return sorted(needed)


# fitting


def apply_step(step: dict[str, Any], frame: pd.DataFrame, *, serving: bool) -> pd.DataFrame:
    op = step["op"]
    if op == "impute":
        if step["strategy"] == "drop":
            return frame if serving else frame.dropna(subset=[c for c in step["columns"] if c in frame.columns])
        present = {c: v for c, v in step["values"].items() if c in frame.columns}
        return frame.fillna(present) if present else frame
    if op == "outliers":
        frame = frame.copy()
        keep = pd.Series(True, index=frame.index)
        for column, (low, high) in step["bounds"].items():
            if column not in frame.columns:
                continue
            values = frame[column].astype(float)
            if step["action"] == "clip" or serving:
                frame[column] = values.clip(low, high)
            else:
                keep &= values.isna() | values.between(low, high)
        return frame if keep.all() else frame[keep]
    if op == "cast":
        frame = frame.copy()
        for column, kind in step["types"].items():
            if column in frame.columns:
                frame[column] = cast_series(frame[column], kind)
        return frame
    if op == "encode":
        return _encode(step, frame)
    if op == "scale":
        frame = frame.copy()
        for column, (center, scale) in step["params"].items():
            if column in frame.columns:
                frame[column] = (frame[column].astype(float) - center) / scale
        return frame
    if op == "select":
        return frame[[c for c in step["columns"] if c in frame.columns]]
    if op == "validate":
        return frame  # checked once, on the data the pipeline was fitted on
    raise PipelineError(f"Unknown op {op!r} in the pipeline state.")


def _encode(step: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column, categories in step["categories"].items():
        if column not in frame.columns:
            continue
        values = frame[column]
        # Positions by hash equality (as a dict lookup: 1 == 1.0), looked up once per distinct value; -1 for
        # unseen or missing values.
        found, distinct = pd.factorize(values.astype(object))
        positions = np.append(pd.Index(categories, dtype=object).get_indexer(distinct), -1)
        codes = positions[found]  # found is -1 for a missing value: the appended -1
        if step["method"] == "ordinal":
            frame[column] = np.where(values.isna().to_numpy(), np.nan, codes.astype(float))
            continue
        position = list(frame.columns).index(column)
        frame = frame.drop(columns=[column])
        for offset, category in enumerate(categories):
            frame.insert(position + offset, f"{column}_{category}", (codes == offset).astype(float))
    return frame


def cast_series(series: pd.Series, kind: str) -> pd.Series:
    if kind == "int":
        return pd.to_numeric(series, errors="raise").astype("int64")
    if kind == "float":
        return pd.to_numeric(series, errors="raise").astype("float64")
    if kind == "bool":
        return series.astype(bool)
    return series.astype(str).where(series.notna(), None)


def plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def plain_or_nan(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return plain(value)
