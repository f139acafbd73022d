"""Preprocessing steps: fitting (statistics from the data) and transforming (rows, with the fitted state).

The fitted state is plain JSON (imputation values, clip bounds, scaler parameters, encoder vocabularies, kept
columns): training records it and serving applies `transform(state, frame, serving=True)` to raw rows, so rows are
transformed exactly as in training and no pickled code is ever loaded. The statistics follow scikit-learn's
(SimpleImputer, StandardScaler with ddof=0, MinMaxScaler, OrdinalEncoder/OneHotEncoder with sorted categories,
VarianceThreshold), so a pandas + scikit-learn reference gives the same numbers.

Step specs (each a dict with "op"):
  impute    columns?, strategy: mean|median|most_frequent|constant|drop, fill_value (constant)
  outliers  columns?, method: iqr|zscore, action: clip|drop, factor (iqr, 1.5), threshold (zscore, 3.0)
  cast      types: {column: int|float|str|bool}
  encode    columns?, method: ordinal|onehot
  scale     columns?, method: standard|minmax
  select    columns (explicit) | method: variance (threshold) | method: correlation (threshold, target?)
  validate  dtypes: {column: numeric|int|float|str|bool}, ranges: {column: [min, max]}, unique: [columns]
Without "columns", a step takes the dataset's feature configuration: numeric steps its numeric features,
encode its categorical features; the target column is never touched.
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


def fit(steps: list[dict[str, Any]], frame: pd.DataFrame, features: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fits every step on the output of the steps before it; returns the JSON state."""
    return fit_transform(steps, frame, features)[0]


def fit_transform(
    steps: list[dict[str, Any]], frame: pd.DataFrame, features: dict[str, Any] | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The JSON state and the transformed frame (each step is fitted on the previous step's output anyway)."""
    features = features or {}
    fitted = []
    input_columns = [str(c) for c in frame.columns]
    for index, step in enumerate(steps):
        op = step.get("op")
        if op not in OPS:
            raise PipelineError(f"Step {index} has op {op!r}; use one of {', '.join(OPS)}.")
        try:
            state = _FIT[op](step, frame, features)
        except PipelineError as e:
            raise PipelineError(f"Step {index} ({op}): {e}") from e
        state = {"op": op, **state}
        fitted.append(state)
        frame = _apply(state, frame, serving=False)
    state = {
        "version": 1,
        "input_columns": input_columns,
        "target": features.get("target"),
        "steps": fitted,
        "output_columns": [str(c) for c in frame.columns],
    }
    return state, frame


def transform(state: dict[str, Any], frame: pd.DataFrame, *, serving: bool = False) -> pd.DataFrame:
    """Applies a fitted pipeline. With `serving`, rows are never dropped (a prediction is owed for each): missing
    values a drop step would have removed stay missing, and outliers a drop step would have removed are clipped to
    the fitted bounds. The target column need not be present."""
    for step in state["steps"]:
        frame = _apply(step, frame, serving=serving)
    return frame


# fitting


def _numeric_columns(step: dict[str, Any], frame: pd.DataFrame, features: dict[str, Any]) -> list[str]:
    columns = step.get("columns") or features.get("numeric")
    if not columns:
        target = features.get("target")
        columns = [str(c) for c in frame.columns if c != target and pd.api.types.is_numeric_dtype(frame[c])]
    _check_present(columns, frame)
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric and step.get("op") != "impute":
        raise PipelineError(f"columns {non_numeric} are not numeric; add a cast step or choose other columns")
    return list(columns)


def _check_present(columns: list[str], frame: pd.DataFrame) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PipelineError(f"columns {missing} are not in the data (columns: {', '.join(map(str, frame.columns))})")


def _fit_impute(step: dict[str, Any], frame: pd.DataFrame, features: dict[str, Any]) -> dict[str, Any]:
    strategy = step.get("strategy", "mean")
    if strategy in ("most_frequent", "constant", "drop") and step.get("columns"):
        columns = list(step["columns"])
        _check_present(columns, frame)
    elif strategy in ("most_frequent", "constant", "drop"):
        target = features.get("target")
        columns = [str(c) for c in frame.columns if c != target]
    else:
        columns = _numeric_columns(step, frame, features)
    if strategy == "drop":
        return {"strategy": "drop", "columns": columns}
    values: dict[str, Any] = {}
    for column in columns:
        present = frame[column].dropna()
        if strategy == "constant":
            if "fill_value" not in step:
                raise PipelineError("strategy 'constant' needs a fill_value")
            values[column] = step["fill_value"]
        elif present.empty:
            raise PipelineError(f"column {column!r} has no values to compute a {strategy} from")
        elif strategy == "mean":
            values[column] = float(present.mean())
        elif strategy == "median":
            values[column] = float(np.median(present.to_numpy(dtype=float)))
        elif strategy == "most_frequent":
            counts = present.value_counts()
            values[column] = _plain(min(counts[counts == counts.max()].index))  # ties: smallest, like sklearn
        else:
            raise PipelineError(f"strategy {strategy!r} is unknown; use mean, median, most_frequent, constant, drop")
    return {"strategy": strategy, "values": values}


def _fit_outliers(step: dict[str, Any], frame: pd.DataFrame, features: dict[str, Any]) -> dict[str, Any]:
    method, action = step.get("method", "iqr"), step.get("action", "clip")
    if action not in ("clip", "drop"):
        raise PipelineError(f"action {action!r} is unknown; use clip or drop")
    bounds = {}
    for column in _numeric_columns(step, frame, features):
        values = frame[column].dropna().to_numpy(dtype=float)
        if values.size == 0:
            raise PipelineError(f"column {column!r} has no values")
        if method == "iqr":
            q1, q3 = np.percentile(values, [25, 75])
            k = float(step.get("factor", 1.5))
            low, high = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
        elif method == "zscore":
            t = float(step.get("threshold", 3.0))
            low, high = values.mean() - t * values.std(), values.mean() + t * values.std()
        else:
            raise PipelineError(f"method {method!r} is unknown; use iqr or zscore")
        bounds[column] = [float(low), float(high)]
    return {"method": method, "action": action, "bounds": bounds}


def _fit_cast(step: dict[str, Any], frame: pd.DataFrame, _features: dict[str, Any]) -> dict[str, Any]:
    types = dict(step.get("types") or {})
    _check_present(list(types), frame)
    bad = {c: t for c, t in types.items() if t not in CAST_TYPES}
    if bad:
        raise PipelineError(f"unknown types {bad}; use one of {', '.join(CAST_TYPES)}")
    for column, kind in types.items():
        try:
            _cast(frame[column], kind)
        except (ValueError, TypeError) as e:
            raise PipelineError(f"column {column!r} does not convert to {kind}: {e}") from e
    return {"types": types}


def _fit_encode(step: dict[str, Any], frame: pd.DataFrame, features: dict[str, Any]) -> dict[str, Any]:
    method = step.get("method", "onehot")
    if method not in ("ordinal", "onehot"):
        raise PipelineError(f"method {method!r} is unknown; use ordinal or onehot")
    columns = step.get("columns") or features.get("categorical")
    if not columns:
        target = features.get("target")
        columns = [str(c) for c in frame.columns if c != target and not pd.api.types.is_numeric_dtype(frame[c])]
    _check_present(list(columns), frame)
    categories = {c: sorted(_plain(v) for v in frame[c].dropna().unique()) for c in columns}
    return {"method": method, "categories": categories}


def _fit_scale(step: dict[str, Any], frame: pd.DataFrame, features: dict[str, Any]) -> dict[str, Any]:
    method = step.get("method", "standard")
    params = {}
    for column in _numeric_columns(step, frame, features):
        values = frame[column].dropna().to_numpy(dtype=float)
        if values.size == 0:
            raise PipelineError(f"column {column!r} has no values")
        if method == "standard":
            center, scale = float(values.mean()), float(values.std())
        elif method == "minmax":
            center, scale = float(values.min()), float(values.max() - values.min())
        else:
            raise PipelineError(f"method {method!r} is unknown; use standard or minmax")
        params[column] = [center, scale if scale > 0 else 1.0]  # a constant column is left centred, like sklearn
    return {"method": method, "params": params}


def _fit_select(step: dict[str, Any], frame: pd.DataFrame, features: dict[str, Any]) -> dict[str, Any]:
    target = step.get("target") or features.get("target")
    if step.get("columns"):
        keep = list(step["columns"])
        _check_present(keep, frame)
    else:
        method = step.get("method")
        numeric = [c for c in frame.columns if c != target and pd.api.types.is_numeric_dtype(frame[c])]
        threshold = float(step.get("threshold", 0.0))
        if method == "variance":
            dropped = [c for c in numeric if not frame[c].var(ddof=0) > threshold]
        elif method == "correlation":
            if not target or target not in frame.columns:
                raise PipelineError("correlation selection needs the target column (feature config or 'target')")
            y = _target_numbers(frame[target])
            dropped = [c for c in numeric if not abs(_corr(frame[c], y)) >= threshold]
        else:
            raise PipelineError("give 'columns', or method 'variance' or 'correlation'")
        keep = [str(c) for c in frame.columns if c not in dropped]
    if target and target in frame.columns and target not in keep:
        keep.append(target)
    return {"columns": keep}


def _target_numbers(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(float)
    codes = {v: i for i, v in enumerate(sorted(series.dropna().unique()))}
    return series.map(codes).astype(float)


def _corr(x: pd.Series, y: pd.Series) -> float:
    value = x.astype(float).corr(y)
    return 0.0 if value is None or math.isnan(value) else float(value)


def _fit_validate(step: dict[str, Any], frame: pd.DataFrame, _features: dict[str, Any]) -> dict[str, Any]:
    found = _violations(step, frame)
    if found:
        raise PipelineError("validation failed: " + "; ".join(found))
    return {k: step[k] for k in ("dtypes", "ranges", "unique") if k in step}


def _violations(step: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    found = []
    checks = {
        "numeric": pd.api.types.is_numeric_dtype,
        "int": pd.api.types.is_integer_dtype,
        "float": pd.api.types.is_float_dtype,
        "str": pd.api.types.is_object_dtype,
        "bool": pd.api.types.is_bool_dtype,
    }
    for column, kind in (step.get("dtypes") or {}).items():
        if column not in frame.columns:
            found.append(f"column {column!r} is missing")
        elif kind not in checks:
            found.append(f"type {kind!r} of {column!r} is unknown; use one of {', '.join(checks)}")
        elif not checks[kind](frame[column]):
            found.append(f"column {column!r} is {frame[column].dtype}, expected {kind}")
    for column, (low, high) in (step.get("ranges") or {}).items():
        if column not in frame.columns:
            found.append(f"column {column!r} is missing")
            continue
        outside = int(((frame[column] < low) | (frame[column] > high)).sum())
        if outside:
            found.append(f"{outside} values of {column!r} are outside [{low}, {high}]")
    for column in step.get("unique") or []:
        if column not in frame.columns:
            found.append(f"column {column!r} is missing")
        elif frame[column].duplicated().any():
            found.append(f"column {column!r} has {int(frame[column].duplicated().sum())} repeated values")
    return found


_FIT = {
    "impute": _fit_impute,
    "outliers": _fit_outliers,
    "cast": _fit_cast,
    "encode": _fit_encode,
    "scale": _fit_scale,
    "select": _fit_select,
    "validate": _fit_validate,
}


# transforming


def _apply(step: dict[str, Any], frame: pd.DataFrame, *, serving: bool) -> pd.DataFrame:
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
                frame[column] = _cast(frame[column], kind)
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
        values = frame[column].map(_plain_or_nan)
        if step["method"] == "ordinal":
            codes = {v: i for i, v in enumerate(categories)}
            frame[column] = values.map(lambda v, codes=codes: codes.get(v, -1) if v is not None else np.nan)
            frame[column] = frame[column].astype(float)
            continue
        position = list(frame.columns).index(column)
        onehot = {f"{column}_{v}": (values == v).astype(float) for v in categories}
        frame = frame.drop(columns=[column])
        for offset, (name, series) in enumerate(onehot.items()):
            frame.insert(position + offset, name, series)
    return frame


def _cast(series: pd.Series, kind: str) -> pd.Series:
    if kind == "int":
        return pd.to_numeric(series, errors="raise").astype("int64")
    if kind == "float":
        return pd.to_numeric(series, errors="raise").astype("float64")
    if kind == "bool":
        return series.astype(bool)
    return series.astype(str).where(series.notna(), None)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain_or_nan(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _plain(value)
