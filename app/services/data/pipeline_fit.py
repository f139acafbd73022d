"""Fitting each preprocessing step: statistics merged over the source's blocks (`pipeline_stats`), following
scikit-learn's (SimpleImputer, StandardScaler with ddof=0, MinMaxScaler, OrdinalEncoder/OneHotEncoder with sorted
categories, VarianceThreshold). The step specs are in `pipeline_ops`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from app.services.data import pipeline_stats as stats
from app.services.data.pipeline_ops import CAST_TYPES, PipelineError, cast_series, plain, plain_or_nan


class Source(Protocol):
    """The data a pipeline is fitted on, in one or more blocks (see train_jobs/streaming_fit.py for Ray's)."""

    def sample(self, steps: list[dict[str, Any]]) -> pd.DataFrame:
        """Rows after the fitted `steps`: their columns and dtypes are the whole data's."""

    def collect(self, steps: list[dict[str, Any]], columns: list[str], partial: Callable[[pd.DataFrame], Any]) -> list:
        """`partial` of every block after the fitted `steps`, in block order; it reads only `columns`."""


@dataclass
class Context:
    """What a step is fitted with: the source, the steps fitted before it, and a sample of their output."""

    source: Source
    fitted: list[dict[str, Any]]
    frame: pd.DataFrame

    def collect(self, columns: list[str], partial: Callable[[pd.DataFrame], Any]) -> list:
        return self.source.collect(self.fitted, columns, partial)

    def moments(self, columns: list[str]) -> dict[str, stats.Moments]:
        parts = self.collect(columns, lambda frame: {c: stats.moments(stats.present(frame, c)) for c in columns})
        return {c: stats.combine_moments([p[c] for p in parts]) for c in columns}

    def quantiles(self, columns: list[str], wanted: list[float]) -> dict[str, list[float]]:
        return stats.quantiles(columns, dict.fromkeys(columns, wanted), lambda partial: self.collect(columns, partial))

    def counts(self, column: str, *, dropna: bool = True) -> pd.Series:
        return stats.combine_counts(self.collect([column], lambda frame: frame[column].value_counts(dropna=dropna)))

    def distinct(self, column: str) -> list[Any]:
        return sorted(plain(v) for v in self.counts(column).index)


def _numeric_columns(step: dict[str, Any], frame: pd.DataFrame, features: dict[str, Any]) -> list[str]:
    columns = step.get("columns") or features.get("numeric")
    if not columns:
        target = features.get("target")
        columns = [str(c) for c in frame.columns if c != target and pd.api.types.is_numeric_dtype(frame[c])]
    _check_present(columns, frame)
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        hint = "; use strategy most_frequent or constant" if step.get("op") == "impute" else ""
        raise PipelineError(f"columns {non_numeric} are not numeric; add a cast step or choose other columns{hint}")
    return list(columns)


def _check_present(columns: list[str], frame: pd.DataFrame) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PipelineError(f"columns {missing} are not in the data (columns: {', '.join(map(str, frame.columns))})")


def _fit_impute(step: dict[str, Any], context: Context, features: dict[str, Any]) -> dict[str, Any]:
    frame = context.frame
    strategy = step.get("strategy", "mean")
    if strategy not in ("mean", "median", "most_frequent", "constant", "drop"):
        raise PipelineError(f"strategy {strategy!r} is unknown; use mean, median, most_frequent, constant, drop")
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
    if strategy == "constant":
        if "fill_value" not in step:
            raise PipelineError("strategy 'constant' needs a fill_value")
        return {"strategy": strategy, "values": dict.fromkeys(columns, step["fill_value"])}
    found: dict[str, tuple[int, Any]]  # column -> (values seen, the fill value)
    if strategy == "mean":
        found = {c: (m[0], m[1]) for c, m in context.moments(columns).items()}
    elif strategy == "median":
        medians = context.quantiles(columns, [stats.MEDIAN])  # NaN: no values
        found = {c: (0 if math.isnan(m[0]) else 1, m[0]) for c, m in medians.items()}
    else:
        found = {}
        for column in columns:
            counts = context.counts(column)
            top = counts[counts == counts.max()].index if len(counts) else []
            found[column] = (len(counts), min(top) if len(top) else None)  # ties: smallest, like sklearn
    values: dict[str, Any] = {}
    for column in columns:
        count, value = found[column]
        if count == 0:
            raise PipelineError(f"column {column!r} has no values to compute a {strategy} from")
        values[column] = float(value) if strategy != "most_frequent" else plain(value)
    return {"strategy": strategy, "values": values}


def _fit_outliers(step: dict[str, Any], context: Context, features: dict[str, Any]) -> dict[str, Any]:
    method, action = step.get("method", "iqr"), step.get("action", "clip")
    if action not in ("clip", "drop"):
        raise PipelineError(f"action {action!r} is unknown; use clip or drop")
    if method not in ("iqr", "zscore"):
        raise PipelineError(f"method {method!r} is unknown; use iqr or zscore")
    columns = _numeric_columns(step, context.frame, features)
    bounds = {}
    if method == "iqr":
        k = float(step.get("factor", 1.5))
        for column, (q1, q3) in context.quantiles(columns, [0.25, 0.75]).items():
            bounds[column] = [float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))]
    else:
        t = float(step.get("threshold", 3.0))
        for column, (n, mean, m2, _low, _high) in context.moments(columns).items():
            std = np.sqrt(m2 / n) if n else np.nan
            bounds[column] = [float(mean - t * std), float(mean + t * std)]
    empty = [c for c in columns if math.isnan(bounds[c][0])]
    if empty:
        raise PipelineError(f"column {empty[0]!r} has no values")
    return {"method": method, "action": action, "bounds": bounds}


def _fit_cast(step: dict[str, Any], context: Context, _features: dict[str, Any]) -> dict[str, Any]:
    types = dict(step.get("types") or {})
    _check_present(list(types), context.frame)
    bad = {c: t for c, t in types.items() if t not in CAST_TYPES}
    if bad:
        raise PipelineError(f"unknown types {bad}; use one of {', '.join(CAST_TYPES)}")

    def failures(frame: pd.DataFrame) -> dict[str, str]:
        found = {}
        for column, kind in types.items():
            try:
                cast_series(frame[column], kind)
            except (ValueError, TypeError) as e:
                found[column] = f"column {column!r} does not convert to {kind}: {e}"
        return found

    for part in context.collect(list(types), failures):
        if part:
            raise PipelineError(next(iter(part.values())))
    return {"types": types}


def _fit_encode(step: dict[str, Any], context: Context, features: dict[str, Any]) -> dict[str, Any]:
    frame = context.frame
    method = step.get("method", "onehot")
    if method not in ("ordinal", "onehot"):
        raise PipelineError(f"method {method!r} is unknown; use ordinal or onehot")
    columns = step.get("columns") or features.get("categorical")
    if not columns:
        target = features.get("target")
        columns = [str(c) for c in frame.columns if c != target and not pd.api.types.is_numeric_dtype(frame[c])]
    _check_present(list(columns), frame)
    return {"method": method, "categories": {c: context.distinct(c) for c in columns}}


def _fit_scale(step: dict[str, Any], context: Context, features: dict[str, Any]) -> dict[str, Any]:
    method = step.get("method", "standard")
    if method not in ("standard", "minmax"):
        raise PipelineError(f"method {method!r} is unknown; use standard or minmax")
    params = {}
    for column, (n, mean, m2, low, high) in context.moments(_numeric_columns(step, context.frame, features)).items():
        if n == 0:
            raise PipelineError(f"column {column!r} has no values")
        center, scale = (mean, float(np.sqrt(m2 / n))) if method == "standard" else (low, high - low)
        params[column] = [center, scale if scale > 0 else 1.0]  # a constant column is left centred, like sklearn
    return {"method": method, "params": params}


def _fit_select(step: dict[str, Any], context: Context, features: dict[str, Any]) -> dict[str, Any]:
    frame = context.frame
    target = step.get("target") or features.get("target")
    if step.get("columns"):
        keep = list(step["columns"])
        _check_present(keep, frame)
    else:
        method = step.get("method")
        numeric = [str(c) for c in frame.columns if c != target and pd.api.types.is_numeric_dtype(frame[c])]
        threshold = float(step.get("threshold", 0.0))
        if method == "variance":
            found = context.moments(numeric)
            dropped = [c for c in numeric if not (found[c][0] and found[c][2] / found[c][0] > threshold)]
        elif method == "correlation":
            if not target or target not in frame.columns:
                raise PipelineError("correlation selection needs the target column (feature config or 'target')")
            codes = None if pd.api.types.is_numeric_dtype(frame[target]) else context.distinct(target)
            parts = context.collect([*numeric, target], lambda f: _target_comoments(f, numeric, target, codes))
            correlations = {c: stats.correlation(stats.combine_comoments([p[c] for p in parts])) for c in numeric}
            dropped = [c for c in numeric if not abs(correlations[c]) >= threshold]
        else:
            raise PipelineError("give 'columns', or method 'variance' or 'correlation'")
        keep = [str(c) for c in frame.columns if c not in dropped]
    if target and target in frame.columns and target not in keep:
        keep.append(target)
    return {"columns": keep}


def _target_comoments(
    frame: pd.DataFrame, numeric: list[str], target: str, codes: list[Any] | None
) -> dict[str, stats.CoMoments]:
    """Co-moments of each numeric column with the target (a text target as its sorted categories' positions)."""
    if codes is None:
        y = frame[target].to_numpy(dtype=float, na_value=np.nan)
    else:
        y = pd.Index(codes).get_indexer(frame[target].map(plain_or_nan)).astype(float)
        y[frame[target].isna().to_numpy()] = np.nan
    return {c: stats.comoments(frame[c].to_numpy(dtype=float, na_value=np.nan), y) for c in numeric}


def _fit_validate(step: dict[str, Any], context: Context, _features: dict[str, Any]) -> dict[str, Any]:
    frame = context.frame
    found = _dtype_violations(step, frame)
    ranges = {c: r for c, r in (step.get("ranges") or {}).items() if c in frame.columns}
    parts = (
        context.collect(list(ranges), lambda f: {c: _outside(f[c], *r) for c, r in ranges.items()}) if ranges else []
    )
    for column, (low, high) in (step.get("ranges") or {}).items():
        outside = sum(p[column] for p in parts) if column in ranges else None
        if outside is None:
            found.append(f"column {column!r} is missing")
        elif outside:
            found.append(f"{outside} values of {column!r} are outside [{low}, {high}]")
    for column in step.get("unique") or []:
        if column not in frame.columns:
            found.append(f"column {column!r} is missing")
            continue
        repeated = int((context.counts(column, dropna=False) - 1).sum())
        if repeated:
            found.append(f"column {column!r} has {repeated} repeated values")
    if found:
        raise PipelineError("validation failed: " + "; ".join(found))
    return {k: step[k] for k in ("dtypes", "ranges", "unique") if k in step}


def _outside(series: pd.Series, low: float, high: float) -> int:
    return int(((series < low) | (series > high)).sum())


def _dtype_violations(step: dict[str, Any], frame: pd.DataFrame) -> list[str]:
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
    return found


FIT = {
    "impute": _fit_impute,
    "outliers": _fit_outliers,
    "cast": _fit_cast,
    "encode": _fit_encode,
    "scale": _fit_scale,
    "select": _fit_select,
    "validate": _fit_validate,
}


# transforming
