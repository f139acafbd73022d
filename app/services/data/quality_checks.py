"""The quality check itself, a pure function of a frame: completeness, anomalies, duplicates, type consistency.

Columns are typed by the check, not by the reader: a declared type from the request, else the type most of a
column's values parse as (so one stray 'abc' in a numeric column counts as a type error instead of turning the
column into text). Counts are exact; examples are the first offending rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from app.contracts.formats import shown_value

TYPES = ("int", "float", "bool", "datetime", "str")
INFER_FRACTION = 0.8  # a text column is typed X when at least this share of its values parse as X
_BOOLS = {"true", "false", "yes", "no", "t", "f", "y", "n"}


@dataclass(frozen=True)
class QualityConfig:
    iqr_factor: float = 1.5
    z_threshold: float = 3.0
    key_columns: list[str] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)
    max_examples: int = 5

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityConfig:
        return cls(**data)


def problems(config: QualityConfig, columns: list[str]) -> list[str]:
    """What is wrong with the request for a version with these columns (empty: fine)."""
    found = []
    unknown = [c for c in [*config.key_columns, *config.column_types] if c not in columns]
    if unknown:
        found.append(f"columns {sorted(set(unknown))} are not in the data (columns: {', '.join(columns)})")
    bad = {c: t for c, t in config.column_types.items() if t not in TYPES}
    if bad:
        found.append(f"unknown types {bad}; use one of {', '.join(TYPES)}")
    return found


def parse(series: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """(parsed values, mask of present values that do not parse as `kind`)."""
    present = series.notna()
    if kind == "str":
        return series, pd.Series(False, index=series.index)
    if kind in ("int", "float"):
        values = pd.to_numeric(series, errors="coerce") if not pd.api.types.is_numeric_dtype(series) else series
        values = values.astype(float)
        bad = present & values.isna()
        if kind == "int":
            bad |= present & values.notna() & (values != np.floor(values))
        return values, bad
    if kind == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series, pd.Series(False, index=series.index)
        text = series.astype(str).str.strip().str.lower()
        bad = present & ~text.isin(_BOOLS | {"0", "1"})
        return text.isin({"true", "yes", "t", "y", "1"}), bad
    values = pd.to_datetime(series, errors="coerce", format="mixed")
    return values, present & values.isna()


def infer_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        present = series.dropna()
        return "int" if len(present) and bool((present == np.floor(present)).all()) else "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    present = series.dropna()
    if present.empty:
        return "str"
    for kind in ("int", "float", "bool", "datetime"):
        _, bad = parse(present, kind)
        if 1 - bad.mean() >= INFER_FRACTION:
            return kind
    return "str"


def check(frame: pd.DataFrame, config: QualityConfig) -> dict[str, Any]:
    """The report: counts, example rows and a score in [0, 1] (the mean of the four parts' scores)."""
    frame = plain_frame(frame).reset_index(drop=True)
    rows, cols = frame.shape
    limit = config.max_examples
    types = {str(c): config.column_types.get(str(c)) or infer_type(frame[c]) for c in frame.columns}

    missing = frame.isna()
    missing_per_row = missing.sum(axis=1)
    completeness = {
        "missing_cells": int(missing.to_numpy().sum()),
        "missing_per_column": {str(c): int(n) for c, n in missing.sum().items()},
        "rows_with_missing": int((missing_per_row > 0).sum()),
        "rows_by_missing_count": {str(k): int(v) for k, v in missing_per_row.value_counts().sort_index().items()},
        "examples": _examples(frame, missing_per_row > 0, limit),
    }

    type_errors: dict[str, Any] = {}
    numeric: dict[str, pd.Series] = {}
    bad_cells = 0
    for column, kind in types.items():
        values, bad = parse(frame[column], kind)
        bad_cells += int(bad.sum())
        type_errors[column] = {
            "type": kind,
            "invalid": int(bad.sum()),
            "examples": [{"row": int(i), "value": _json(frame.at[i, column])} for i in bad[bad].index[:limit]],
        }
        if kind in ("int", "float"):
            numeric[column] = values.where(~bad)

    anomalies: dict[str, Any] = {}
    outlier_rows = pd.Series(False, index=frame.index)
    for column, values in numeric.items():
        present = values.dropna()
        if present.empty:
            continue
        q1, q3 = present.quantile(0.25), present.quantile(0.75)
        iqr = q3 - q1
        low, high = q1 - config.iqr_factor * iqr, q3 + config.iqr_factor * iqr
        by_iqr = (values < low) | (values > high)
        mean, std = present.mean(), present.std(ddof=0)
        by_z = ((values - mean).abs() / std > config.z_threshold) if std > 0 else pd.Series(False, index=values.index)
        outlier_rows |= by_iqr | by_z
        anomalies[column] = {
            "iqr": {
                "q1": _json(q1),
                "q3": _json(q3),
                "low": _json(low),
                "high": _json(high),
                "count": int(by_iqr.sum()),
            },
            "zscore": {"mean": _json(mean), "std": _json(std), "count": int(by_z.sum())},
            "examples": [
                {"row": int(i), "value": _json(frame.at[i, column])} for i in values[by_iqr | by_z].index[:limit]
            ],
        }

    duplicated = frame.duplicated(keep="first")
    keys = {}
    key_dup_rows = pd.Series(False, index=frame.index)
    for column in config.key_columns:
        dup = frame[column].notna() & frame[column].duplicated(keep=False)
        key_dup_rows |= dup
        keys[column] = {
            "rows": int(dup.sum()),
            "values": int(frame.loc[dup, column].nunique()),
            "examples": _examples(frame, dup, limit),
        }
    duplicates = {
        "duplicate_rows": int(duplicated.sum()),
        "examples": _examples(frame, duplicated, limit),
        "key_columns": keys,
    }

    cells = max(rows * cols, 1)
    present_cells = max(cells - completeness["missing_cells"], 1)
    parts = {
        "completeness": 1 - completeness["missing_cells"] / cells,
        "validity": 1 - bad_cells / present_cells,
        "uniqueness": 1 - int((duplicated | key_dup_rows).sum()) / max(rows, 1),
        "anomalies": 1 - int(outlier_rows.sum()) / max(rows, 1),
    }
    return {
        "rows": rows,
        "columns": cols,
        "column_types": types,
        "completeness": completeness,
        "type_consistency": type_errors,
        "anomalies": {"outlier_rows": int(outlier_rows.sum()), "columns": anomalies},
        "duplicates": duplicates,
        "scores": {k: round(v, 6) for k, v in parts.items()},
        "score": round(sum(parts.values()) / len(parts), 6),
    }


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain objects with None for missing, whichever reader made them (pandas' `str` with NaN,
    Arrow-backed `string[pyarrow]` with pd.NA from Ray Data), so both give the same report and pipeline state."""
    extension = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype | pd.ArrowDtype)]
    if not extension:
        return frame
    frame = frame.copy()
    for column in extension:
        series = frame[column]
        kind = getattr(series.dtype, "numpy_dtype", np.dtype(object))
        if kind.kind in "iub" and not series.isna().any():
            frame[column] = series.to_numpy(dtype=kind)
        elif kind.kind in "iuf":
            frame[column] = series.to_numpy(dtype=float, na_value=np.nan)
        else:
            frame[column] = pd.Series(series.astype(object).where(series.notna(), None), dtype=object)
    return frame


def _examples(frame: pd.DataFrame, mask: pd.Series, limit: int) -> list[dict[str, Any]]:
    return [
        {"row": int(i), "values": {str(c): _json(v) for c, v in frame.loc[i].items()}} for i in mask[mask].index[:limit]
    ]


def _json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, str):
        return shown_value(value)
    if isinstance(value, int | float | bool):
        return value
    return shown_value(str(value))
