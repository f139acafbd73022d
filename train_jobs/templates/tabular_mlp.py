"""Tabular MLP classifier template: feature encoding fitted on the training rows, the network, prediction.

Training and serving share this module, so raw rows are transformed exactly the same way in both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

TEMPLATE_NAME = "tabular_mlp"
MAX_CLASSES = 100


class InvalidData(ValueError):
    """The data does not fit the template; the message says what to change."""


@dataclass(frozen=True)
class TabularSpec:
    """What the model expects: the input columns with their standardisation, and the target's classes."""

    feature_columns: list[str]
    target_column: str
    classes: list[Any]
    means: list[float]
    stds: list[float]
    hidden_units: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularSpec:
        return cls(**data)


def check_frame(df: pd.DataFrame, target_column: str) -> list[str]:
    """Returns the feature columns, or raises InvalidData naming what this template cannot take."""
    if target_column not in df.columns:
        raise InvalidData(
            f"Target column {target_column!r} is not in the data; columns are: {', '.join(map(str, df.columns))}."
        )
    features = [str(c) for c in df.columns if c != target_column]
    if not features:
        raise InvalidData("The data has no feature columns besides the target.")
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise InvalidData(
            f"Feature columns {non_numeric} are not numeric; the tabular_mlp template takes numeric features "
            "only. Encode them as numbers or drop them."
        )
    n_classes = df[target_column].nunique(dropna=True)
    if n_classes < 2 or n_classes > MAX_CLASSES:
        raise InvalidData(
            f"Target column {target_column!r} has {n_classes} distinct values; classification needs 2 to {MAX_CLASSES}."
        )
    if df[target_column].isna().any():
        raise InvalidData(f"Target column {target_column!r} has missing values; drop those rows first.")
    return features


def fit_spec(df: pd.DataFrame, target_column: str, hidden_units: int = 64) -> TabularSpec:
    features = check_frame(df, target_column)
    values = df[features].astype("float64")
    stds = values.std(ddof=0).fillna(0.0)
    return TabularSpec(
        feature_columns=features,
        target_column=target_column,
        classes=sorted(pd.unique(df[target_column]).tolist(), key=str),
        means=[float(v) for v in values.mean().fillna(0.0)],
        stds=[float(v) if v > 0 else 1.0 for v in stds],
        hidden_units=hidden_units,
    )


def encode_features(spec: TabularSpec, df: pd.DataFrame) -> np.ndarray:
    missing = [c for c in spec.feature_columns if c not in df.columns]
    if missing:
        raise InvalidData(f"Rows lack the model's input columns {missing}; send all of {spec.feature_columns}.")
    try:
        values = df[spec.feature_columns].astype("float64").to_numpy()
    except (TypeError, ValueError) as e:
        raise InvalidData(f"Input values must be numbers: {e}") from e
    # Missing values become the training mean, i.e. 0 after standardisation.
    scaled = (values - np.asarray(spec.means)) / np.asarray(spec.stds)
    return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


def encode_labels(spec: TabularSpec, series: pd.Series) -> np.ndarray:
    index = {value: i for i, value in enumerate(spec.classes)}
    return series.map(index).to_numpy(dtype=np.int64)


def build_model(spec: TabularSpec) -> nn.Module:
    h = spec.hidden_units
    return nn.Sequential(
        nn.Linear(len(spec.feature_columns), h),
        nn.ReLU(),
        nn.Linear(h, h),
        nn.ReLU(),
        nn.Linear(h, len(spec.classes)),
    )


def predict(model: nn.Module, spec: TabularSpec, df: pd.DataFrame) -> dict[str, list[Any]]:
    """Predicted labels and per-class probabilities for raw rows."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(encode_features(spec, df)))
        probabilities = torch.softmax(logits, dim=1).numpy()
    labels = [spec.classes[i] for i in probabilities.argmax(axis=1)]
    return {"labels": labels, "probabilities": [[float(p) for p in row] for row in probabilities]}


def accuracy(labels: list[Any], truth: list[Any]) -> float:
    if not truth:
        return math.nan
    return sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth)
