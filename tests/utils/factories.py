"""Test data: small CSV files and datasets created through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from app.client import Client

TARGET = "diagnosis"


def breast_cancer_split(test_size: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": TARGET})
    frame[TARGET] = frame[TARGET].map(dict(enumerate(data.target_names)))
    train, held_out = train_test_split(frame, test_size=test_size, random_state=42, stratify=frame[TARGET])
    return train, held_out


def upload_frame(client: Client, frame: pd.DataFrame, directory: Path, name: str) -> dict[str, Any]:
    """Creates a dataset holding `frame` as CSV and returns its first version."""
    path = directory / f"{name}.csv"
    frame.to_csv(path, index=False)
    dataset = client.create_dataset(name)
    return client.upload_csv(dataset["id"], path)
