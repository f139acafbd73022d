"""A training job's configuration: hyperparameters and resources, validated once when the job is created.

The API takes these fields, the service stores `model_dump()` as the job's config, and the job's driver reads it
back with `TrainConfig.model_validate`, so every process sees the same defaults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Task = Literal["classification", "regression"]

# Metrics each task's loop reports; the job's metric (best checkpoint, early stopping) must be one of them.
METRICS: dict[str, dict[str, str]] = {
    "classification": {"val_accuracy": "max", "val_loss": "min", "loss": "min"},
    "regression": {"val_loss": "min", "val_rmse": "min", "val_mae": "min", "val_r2": "max", "loss": "min"},
}
DEFAULT_METRIC = {"classification": "val_accuracy", "regression": "val_loss"}


class LrScheduler(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["none", "step", "cosine", "plateau"] = "none"
    step_size: int = Field(default=10, ge=1, description="step: epochs between decays")
    gamma: float = Field(default=0.1, gt=0, le=1, description="step: decay factor")
    patience: int = Field(default=2, ge=0, description="plateau: epochs without improvement before a decay")
    factor: float = Field(default=0.5, gt=0, lt=1, description="plateau: decay factor")


class EarlyStopping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str | None = Field(default=None, description="Default: the job's metric.")
    patience: int = Field(default=3, ge=1, description="Epochs without improvement before stopping.")
    min_delta: float = Field(default=0.0, ge=0)


class Augmentation(BaseModel):
    """Random changes to each training batch, drawn anew every epoch (image templates); validation images are never
    augmented."""

    model_config = ConfigDict(extra="forbid")
    horizontal_flip: float = Field(default=0.0, ge=0, le=1, description="Probability of mirroring an image left-right.")
    vertical_flip: float = Field(default=0.0, ge=0, le=1, description="Probability of flipping an image upside down.")
    crop_size: int | None = Field(
        default=None, ge=1, description="Random crop: a window this large at a random place, scaled back to the size."
    )
    crop_padding: int = Field(default=0, ge=0, le=256, description="Random crop: zero pixels added on each side first.")
    noise_std: float = Field(default=0.0, ge=0, le=5, description="Std of Gaussian noise added to normalised pixels.")


class ImageOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(default=32, ge=8, le=512, description="Images are resized to size x size pixels.")
    conv_channels: int = Field(
        default=16, ge=1, le=256, description="Filters of the first conv layer (doubled in each of the next two)."
    )
    augmentation: Augmentation = Field(default_factory=Augmentation)

    @model_validator(mode="after")
    def _crop_fits(self) -> ImageOptions:
        crop, padding = self.augmentation.crop_size, self.augmentation.crop_padding
        if padding and crop is None:
            raise ValueError("augmentation.crop_padding needs augmentation.crop_size (the window to crop)")
        limit = self.size + 2 * padding
        if crop is not None and crop > limit:
            raise ValueError(
                f"augmentation.crop_size {crop} is larger than the image ({self.size} px plus {padding} padding on "
                f"each side = {limit}); use at most {limit}, or a larger size or crop_padding"
            )
        return self


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_column: str = Field(min_length=1)
    task: Task = "classification"
    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=65_536)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd only")
    lr_scheduler: LrScheduler = Field(default_factory=LrScheduler)
    early_stopping: EarlyStopping | None = None
    metric: str | None = Field(default=None, description="Ranks checkpoints; default val_accuracy / val_loss.")
    mode: Literal["min", "max"] | None = Field(default=None, description="Default: the metric's natural order.")
    checkpoint_interval: int = Field(default=1, ge=1, le=10_000, description="Epochs between checkpoints.")
    log_every_n_steps: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Batches between logged training steps (loss, lr, throughput); default: about ten per epoch and"
        " at least every 50 batches; 0: none.",
    )
    hidden_units: int = Field(default=64, ge=1, le=4096)
    num_workers: int = Field(default=2, ge=1, le=256)
    cpus_per_worker: float = Field(default=1.0, gt=0, le=256)
    gpus_per_worker: float = Field(default=0.0, ge=0, le=16)
    memory_per_worker_mb: int = Field(default=0, ge=0, le=4_194_304, description="0: no memory reservation.")
    params: dict[str, Any] = Field(default_factory=dict, description="Free parameters for uploaded training code.")
    image: ImageOptions | None = Field(
        default=None, description="Template image_cnn: image size, network width, augmentation (defaults if absent)."
    )

    @model_validator(mode="after")
    def _resolve_metric(self) -> TrainConfig:
        known = METRICS[self.task]
        self.metric = self.metric or DEFAULT_METRIC[self.task]
        if self.metric not in known:
            raise ValueError(f"metric {self.metric!r} is not reported for {self.task}; use one of {sorted(known)}")
        self.mode = self.mode or known[self.metric]  # type: ignore[assignment]
        if self.early_stopping is not None:
            self.early_stopping.metric = self.early_stopping.metric or self.metric
            if self.early_stopping.metric not in known:
                raise ValueError(
                    f"early_stopping.metric {self.early_stopping.metric!r} is not reported for {self.task}; "
                    f"use one of {sorted(known)}"
                )
        return self

    def worker_resources(self) -> dict[str, float]:
        """What one Ray Train worker reserves (Ray's resource names; memory in bytes)."""
        resources = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            resources["GPU"] = self.gpus_per_worker
        if self.memory_per_worker_mb:
            resources["memory"] = float(self.memory_per_worker_mb * 2**20)
        return resources

    def demand(self) -> dict[str, float]:
        """What the whole job reserves while it runs."""
        return {k: v * self.num_workers for k, v in self.worker_resources().items()}

    def metric_mode(self, metric: str) -> str:
        return METRICS[self.task][metric]


def better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


@dataclass(frozen=True)
class WorkerPlan:
    """The worker group a job's Train run will ask for: what the scheduler placed."""

    num_workers: int
    resources: dict[str, float]
    label_selector: dict[str, str] | None = None
    warm_pool: str | None = None  # the named pool of warm workers to take them from (`app.contracts.warm_pool`)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkerPlan:
        data = json.loads(text)
        return cls(int(data["num_workers"]), dict(data["resources"]), data.get("label_selector"), data.get("warm_pool"))

    def bundles(self) -> list[dict[str, float]]:
        return [dict(self.resources) for _ in range(self.num_workers)]

    def bundle_label_selector(self) -> list[dict[str, str]] | None:
        return [dict(self.label_selector) for _ in range(self.num_workers)] if self.label_selector else None


def parse(config: dict[str, Any]) -> TrainConfig:
    return TrainConfig.model_validate(config)
