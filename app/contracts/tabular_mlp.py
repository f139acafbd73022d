"""The tabular_mlp template's data contract: which frames it trains on (numeric features, a target of 2 to
`MAX_CLASSES` classes or a numeric one). The network and the feature encoding are the workload's
(`train_jobs.templates.tabular_mlp`); the services check a dataset against this before a job is queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where frames are used: training workers start without it
    import pandas as pd

TEMPLATE_NAME = "tabular_mlp"
MAX_CLASSES = 100


class InvalidData(ValueError):
    """The data does not fit the template; the message says what to change."""


def check_frame(df: pd.DataFrame, target_column: str, task: str = "classification") -> list[str]:
    """Returns the feature columns, or raises InvalidData naming what this template cannot take."""
    if target_column not in df.columns:
        raise InvalidData(
            f"Target column {target_column!r} is not in the data; columns are: {', '.join(map(str, df.columns))}."
        )
    features = [str(c) for c in df.columns if c != target_column]
    if not features:
        raise InvalidData("The data has no feature columns besides the target.")
    from pandas.api.types import is_numeric_dtype

    non_numeric = [c for c in features if not is_numeric_dtype(df[c])]
    if non_numeric:
        raise InvalidData(
            f"Feature columns {non_numeric} are not numeric; the tabular_mlp template takes numeric features "
            "only. Encode them as numbers or drop them."
        )
    if df[target_column].isna().any():
        raise InvalidData(f"Target column {target_column!r} has missing values; drop those rows first.")
    if task == "regression":
        if not is_numeric_dtype(df[target_column]):
            raise InvalidData(f"Target column {target_column!r} is not numeric; regression needs a numeric target.")
        return features
    n_classes = df[target_column].nunique(dropna=True)
    if n_classes < 2 or n_classes > MAX_CLASSES:
        raise InvalidData(
            f"Target column {target_column!r} has {n_classes} distinct values; classification needs 2 to "
            f"{MAX_CLASSES}. For a numeric target use task 'regression'."
        )
    return features
