"""Tabular MLP template (classification or regression): feature encoding fitted on the training rows, the
network, prediction. Which data it takes is its contract (`app.contracts.tabular_mlp`).

Training and serving share this module, so raw rows are transformed exactly the same way in both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from app.contracts.tabular_mlp import InvalidData, check_frame

if TYPE_CHECKING:  # pandas is imported where frames are used: training workers start without it
    import pandas as pd


@dataclass(frozen=True)
class TabularSpec:
    """What the model expects: the input columns with their standardisation, and the target's classes (or, for
    regression, the target's standardisation)."""

    feature_columns: list[str]
    target_column: str
    classes: list[Any]
    means: list[float]
    stds: list[float]
    hidden_units: int = 64
    task: str = "classification"
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularSpec:
        return cls(**data)


def fit_spec(df: pd.DataFrame, target_column: str, hidden_units: int = 64, task: str = "classification") -> TabularSpec:
    features = check_frame(df, target_column, task)
    values = df[features].astype("float64")
    stds = values.std(ddof=0).fillna(0.0)
    target = df[target_column]
    regression = task == "regression"
    target_std = float(target.std(ddof=0)) if regression else 1.0
    return TabularSpec(
        feature_columns=features,
        target_column=target_column,
        classes=[] if regression else sorted(target.dropna().unique().tolist(), key=str),
        means=[float(v) for v in values.mean().fillna(0.0)],
        stds=[float(v) if v > 0 else 1.0 for v in stds],
        hidden_units=hidden_units,
        task=task,
        target_mean=float(target.mean()) if regression else 0.0,
        target_std=target_std if target_std > 0 else 1.0,
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
    """Class indices (int64), or for regression the standardised target as a (n, 1) float32 column."""
    if spec.task == "regression":
        scaled = (series.to_numpy(dtype=np.float64) - spec.target_mean) / spec.target_std
        return scaled.astype(np.float32).reshape(-1, 1)
    index = {value: i for i, value in enumerate(spec.classes)}
    return series.map(index).to_numpy(dtype=np.int64)


def build_model(spec: TabularSpec) -> nn.Module:
    h = spec.hidden_units
    return nn.Sequential(
        nn.Linear(len(spec.feature_columns), h),
        nn.ReLU(),
        nn.Linear(h, h),
        nn.ReLU(),
        nn.Linear(h, spec.outputs),
    )


def predict(model: nn.Module, spec: TabularSpec, df: pd.DataFrame) -> dict[str, list[Any]]:
    """Predicted labels and per-class probabilities for raw rows (regression: values, no probabilities)."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(encode_features(spec, df)))
        if spec.task == "regression":
            values = (logits[:, 0].double() * spec.target_std + spec.target_mean).tolist()
            return {"labels": values, "probabilities": [[] for _ in values]}
        probabilities = torch.softmax(logits, dim=1).numpy()
    labels = [spec.classes[i] for i in probabilities.argmax(axis=1)]
    return {"labels": labels, "probabilities": [[float(p) for p in row] for row in probabilities]}


def accuracy(labels: list[Any], truth: list[Any]) -> float:
    if not truth:
        return math.nan
    return sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth)
