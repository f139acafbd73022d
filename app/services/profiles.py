"""Profile of a dataset version: per column type, missing and unique counts, min/max/mean/std, top values and
histogram bins. Versions are immutable, so a profile is computed once (on first read) and stored with the row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from app.core.config import Settings
from app.db.models import DatasetVersion
from app.db.session import session_scope
from app.services import datasets
from app.storage import ObjectStore

TOP_VALUES = 10
HISTOGRAM_BINS = 10


def get_profile(settings: Settings, store: ObjectStore, *, user: Any, version_id: int) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        version = datasets.get_version(session, user=user, version_id=version_id)
        if version.profile is not None:
            return version.profile
        frame = datasets.load_frame(store, version)
    profile = profile_frame(frame)
    with session_scope(settings.database_url) as session:
        session.get_one(DatasetVersion, version_id).profile = profile
    return profile


def profile_frame(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "rows": len(frame),
        "columns": len(frame.columns),
        "column_profiles": [_column(str(name), frame[name]) for name in frame.columns],
    }


def _column(name: str, series: pd.Series) -> dict[str, Any]:
    present = series.dropna()
    out: dict[str, Any] = {
        "name": name,
        "dtype": str(series.dtype),
        "missing": int(series.isna().sum()),
        "unique": int(present.nunique()),
    }
    counts = present.astype(str).value_counts().head(TOP_VALUES)
    out["top_values"] = [{"value": v, "count": int(c)} for v, c in counts.items()]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and len(present):
        values = present.to_numpy(dtype=float)
        out.update(
            min=_num(values.min()),
            max=_num(values.max()),
            mean=_num(values.mean()),
            std=_num(values.std(ddof=1)) if len(values) > 1 else None,
        )
        hist, edges = np.histogram(values, bins=HISTOGRAM_BINS)
        out["histogram"] = {"counts": [int(c) for c in hist], "edges": [_num(e) for e in edges]}
    return out


def _num(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value
