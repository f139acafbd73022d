"""Request and response bodies (named XCreate / XPublic)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from app.contracts import image_cnn, tabular_mlp
from app.contracts.pipeline_steps import PipelineStep
from app.contracts.search_space import SearchConfig
from app.contracts.templates import CUSTOM_TEMPLATE, TEMPLATES
from app.contracts.train_config import TrainConfig
from app.db.models import MAX_ID
from app.storage import public_checkpoint

T = TypeVar("T")


def _as_utc(value: dt.datetime) -> dt.datetime:
    # Rows hold naive UTC; an answer carries the offset, so clients never read it as their local time.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UtcDatetime = Annotated[dt.datetime, AfterValidator(_as_utc)]
"""A timestamp in an answer: UTC, with its offset."""


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Strict(BaseModel):
    """A request body: an unknown (e.g. misspelt) field is refused, naming it, rather than ignored."""

    model_config = ConfigDict(extra="forbid")


# An id in a request body: within the database's INTEGER range, as path ids are (app.api.deps.IdPath).
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]


class Page(Public, Generic[T]):
    """One page of a list: every list route answers in this shape (`?limit=&offset=&sort=` and its filters)."""

    items: list[T]
    total: int = Field(description="How many items match the filters, on every page.")
    limit: int
    offset: int


class DatasetCreate(Strict):
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
    columns: list[dict[str, Any]]  # name, dtype; "mixed": true for a column mixing JSON types
    created_at: UtcDatetime


class DatasetPublic(Public):
    id: int
    name: str
    description: str
    owner_id: int
    feature_config: dict[str, Any] | None = None
    created_at: UtcDatetime
    versions: list[DatasetVersionPublic] = []


class JobCreate(TrainConfig):
    """A training job: data, template, hyperparameters and resources (see app/contracts/train_config.py)."""

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    dataset_id: RowId | None = Field(default=None, description="Trains on the dataset's newest version.")
    dataset_version_id: RowId | None = None
    template: str = Field(
        default=tabular_mlp.TEMPLATE_NAME, json_schema_extra={"enum": list[JsonValue](sorted(TEMPLATES))}
    )
    priority: int = Field(default=0, ge=-100, le=100, description="Higher starts first; FIFO within a priority.")
    start: bool = Field(default=True, description="False: keep the job CREATED until POST .../start.")
    code_hash: str | None = Field(default=None, description="Template 'custom': the hash POST /training/code gave.")
    min_quality_score: float | None = Field(
        default=None, ge=0, le=1, description="Refuse the data unless its newest quality report scores at least this."
    )

    @model_validator(mode="after")
    def _options_of_template(self) -> JobCreate:
        if self.template not in TEMPLATES:
            raise ValueError(f"Unknown template {self.template!r}; use one of {', '.join(sorted(TEMPLATES))}")
        set_here = self.model_fields_set
        misplaced = [
            field
            for field, owner in (
                ("image", image_cnn.TEMPLATE_NAME),
                ("params", CUSTOM_TEMPLATE),
                ("code_hash", CUSTOM_TEMPLATE),
            )
            if field in set_here and getattr(self, field) and self.template != owner
        ]
        if misplaced:
            raise ValueError(
                f"{', '.join(misplaced)}: not an option of template {self.template!r}; remove it or use the template"
                " it belongs to (image: image_cnn; params, code_hash: custom)"
            )
        return self

    def train_config(self) -> TrainConfig:
        return TrainConfig.model_validate(self.model_dump(include=set(TrainConfig.model_fields)))


class CodePublic(BaseModel):
    code_hash: str
    file_name: str
    size_bytes: int


class JobTransitionPublic(Public):
    from_status: str | None
    to_status: str
    message: str
    created_at: UtcDatetime


class JobPublic(Public):
    id: int
    name: str
    owner_id: int
    dataset_version_id: int
    template: str
    config: dict[str, Any]
    status: str
    message: str
    priority: int
    attempts: int
    ray_job_id: str | None
    code_hash: str | None
    created_at: UtcDatetime
    queued_at: UtcDatetime | None
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    metrics: list[dict[str, Any]] = []
    transitions: list[JobTransitionPublic] = []
    model_version_id: int | None = None


class MetricsPage(BaseModel):
    job_id: int
    total_steps: int
    points: list[dict[str, Any]]


class TuneCreate(TrainConfig):
    """A tuning run: the base training config every trial starts from, plus the search."""

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    dataset_id: RowId | None = None
    dataset_version_id: RowId | None = None
    template: Literal["tabular_mlp"] = Field(
        default="tabular_mlp", description="Only tabular_mlp can be tuned, for now."
    )
    search: SearchConfig
    priority: int = Field(default=0, ge=-100, le=100, description="Higher starts first; FIFO within a priority.")

    def train_config(self) -> TrainConfig:
        return TrainConfig.model_validate(self.model_dump(include=set(TrainConfig.model_fields)))


class TrialPublic(Public):
    id: int
    trial_key: str
    config: dict[str, Any]
    status: str
    iterations: int
    best_value: float | None
    message: str
    history: list[dict[str, Any]]


class TuneRunPublic(Public):
    id: int
    name: str
    owner_id: int
    dataset_version_id: int
    template: str
    config: dict[str, Any]
    search: dict[str, Any]
    status: str
    message: str
    priority: int = 0
    ray_job_id: str | None
    best_trial_id: int | None
    model_version_id: int | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    trials: list[TrialPublic] = []


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
    lineage: dict[str, Any] | None = None
    created_at: UtcDatetime

    @field_validator("lineage")
    @classmethod
    def _no_server_paths(cls, lineage: dict[str, Any] | None) -> dict[str, Any] | None:
        # Stored as Ray Train's location (a server path or bucket): shown as a key within the platform's storage.
        if lineage and isinstance(lineage.get("checkpoint"), str):
            lineage = {**lineage, "checkpoint": public_checkpoint(lineage["checkpoint"])}
        return lineage


class ModelPublic(Public):
    id: int
    name: str
    owner_id: int
    versions: list[ModelVersionPublic]


class DeployRequest(Strict):
    num_replicas: int = Field(default=1, ge=1, le=64)


class DeploymentPublic(Public):
    id: int
    model_version_id: int
    owner_id: int
    num_replicas: int
    status: str
    message: str
    created_at: UtcDatetime


class PredictRequest(Strict):
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class PredictResponse(BaseModel):
    labels: list[Any]
    probabilities: list[list[float]]
    classes: list[Any]


# data layer: versions, profiles, quality (upload bodies: schemas_upload.py)


class DatasetVersionDetail(DatasetVersionPublic):
    parent_id: int | None = None
    pipeline: dict[str, Any] | None = None
    state_key: str | None = None


class QualityCreate(Strict):
    iqr_factor: float = Field(default=1.5, gt=0, description="Outlier if outside [Q1 - k*IQR, Q3 + k*IQR].")
    z_threshold: float = Field(default=3.0, gt=0, description="Outlier if |value - mean| / std exceeds this.")
    key_columns: list[str] = Field(default=[], description="Columns whose values must be unique.")
    column_types: dict[str, str] = Field(
        default={}, description="Declared type per column (int, float, bool, datetime, str); default: inferred."
    )
    max_examples: int = Field(default=5, ge=0, le=100)


class QualityReportPublic(Public):
    id: int
    version_id: int
    owner_id: int
    status: str
    config: dict[str, Any]
    result: dict[str, Any] | None
    score: float | None
    message: str
    created_at: UtcDatetime
    finished_at: UtcDatetime | None


ColumnName = Annotated[str, Field(min_length=1, max_length=256)]


class FeatureConfig(Strict):
    target: ColumnName | None = None
    numeric: list[ColumnName] = Field(default=[], max_length=10_000)
    categorical: list[ColumnName] = Field(default=[], max_length=10_000)


class PipelineCreate(Strict):
    steps: list[PipelineStep] = Field(
        min_length=1,
        max_length=100,
        description="In order, e.g. [{'op': 'impute', 'strategy': 'median'}, {'op': 'scale'}].",
    )


class PipelineRunPublic(Public):
    id: int
    input_version_id: int
    output_version_id: int | None
    owner_id: int
    steps: list[dict[str, Any]]
    status: str
    message: str
    created_at: UtcDatetime
    finished_at: UtcDatetime | None
