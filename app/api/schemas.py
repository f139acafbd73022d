"""Request and response bodies (named XCreate / XPublic)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserPublic(Public):
    id: int
    username: str
    is_admin: bool


class DatasetCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")
    description: str = Field(default="", max_length=1024)


class DatasetVersionPublic(Public):
    id: int
    dataset_id: int
    version: int
    file_name: str
    format: str
    size_bytes: int
    sha256: str
    num_rows: int
    columns: list[dict[str, str]]
    created_at: dt.datetime


class DatasetPublic(Public):
    id: int
    name: str
    description: str
    owner_id: int
    created_at: dt.datetime
    versions: list[DatasetVersionPublic] = []


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    dataset_id: int | None = Field(default=None, description="Trains on the dataset's newest version.")
    dataset_version_id: int | None = None
    template: str = "tabular_mlp"
    target_column: str = Field(min_length=1)
    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=65_536)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    num_workers: int = Field(default=2, ge=1, le=256)


class JobPublic(Public):
    id: int
    name: str
    owner_id: int
    dataset_version_id: int
    template: str
    config: dict[str, Any]
    status: str
    message: str
    ray_job_id: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    metrics: list[dict[str, Any]] = []
    model_version_id: int | None = None


class ModelVersionPublic(Public):
    id: int
    model_id: int
    version: int
    stage: str
    training_job_id: int | None
    dataset_version_id: int | None
    template: str
    artifact_key: str
    signature: dict[str, Any]
    metrics: dict[str, float]
    created_at: dt.datetime


class ModelPublic(Public):
    id: int
    name: str
    owner_id: int
    versions: list[ModelVersionPublic]


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_replicas: int = Field(default=1, ge=1, le=64)


class DeploymentPublic(Public):
    id: int
    model_version_id: int
    owner_id: int
    num_replicas: int
    status: str
    message: str
    created_at: dt.datetime


class PredictRequest(BaseModel):
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class PredictResponse(BaseModel):
    labels: list[Any]
    probabilities: list[list[float]]
    classes: list[Any]
