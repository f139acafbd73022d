"""Training jobs, tuning runs and trials, run history, metrics and resource samples."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.contracts.status import JobStatus, TrialStatus
from app.db.models.base import Base, utcnow


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_status_created", "status", "created_at"),
        Index("ix_training_jobs_owner", "owner_id", "id"),  # a user's jobs, newest first
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    template: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.CREATED)
    message: Mapped[str] = mapped_column(Text, default="")
    logs_key: Mapped[str | None] = mapped_column(String(512), nullable=True)  # logs kept after Ray forgets
    ray_job_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # Ray jobs submitted so far
    queued_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # FIFO within a priority
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Ray node ids the scheduler chose for the current attempt's workers (None: Ray places them).
    preferred_nodes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


class TuningRun(Base):
    """A Ray Tune run over one dataset version: a search space, a metric, ASHA and a search algorithm."""

    __tablename__ = "tuning_runs"
    __table_args__ = (
        Index("ix_tuning_runs_status_created", "status", "created_at"),
        Index("ix_tuning_runs_owner", "owner_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    template: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the base training config every trial starts from
    search: Mapped[dict[str, Any]] = mapped_column(JSON)  # space, metric, mode, scheduler, algorithm, trials
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    message: Mapped[str] = mapped_column(Text, default="")
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ray_job_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    logs_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    best_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the best trial's version
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TuningTrial(Base):
    """One trial of a tuning run: its sampled config, state and per-iteration metric history."""

    __tablename__ = "tuning_trials"
    __table_args__ = (UniqueConstraint("run_id", "trial_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("tuning_runs.id", ondelete="CASCADE"))
    trial_key: Mapped[str] = mapped_column(String(64))  # Ray Tune's trial id
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.RUNNING)
    iterations: Mapped[int] = mapped_column(Integer, default=0)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_checkpoint: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    history: Mapped[list[Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RunTransition(Base):
    """Every status change of a row backed by a Ray job (a training job, a tuning run, ...), with why it happened.
    `kind` names the row's table (app.runs.kinds); no foreign key, so the lifecycle deletes a row's history with it."""

    __tablename__ = "run_transitions"
    __table_args__ = (Index("ix_run_transitions_run", "kind", "run_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int] = mapped_column(Integer)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class JobMetric(Base):
    """One value of one metric at one step (epoch), like MLflow's tall metric table."""

    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_step", "job_id", "step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class JobStepMetric(Base):
    """Training metrics of one batch step (loss, learning rate, throughput), logged every few batches by rank 0:
    the curve between epochs. One row per logged step, its values together."""

    __tablename__ = "job_step_metrics"
    __table_args__ = (Index("ix_job_step_metrics_job_step", "job_id", "step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)  # batches trained since the job began, counted on rank 0
    epoch: Mapped[int] = mapped_column(Integer)  # the epoch the step belongs to (1-based)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)  # loss, lr, samples_per_s


class JobUsageSample(Base):
    """One worker's resource use at one moment, sampled on a timer while the job runs (not per epoch)."""

    __tablename__ = "job_usage_samples"
    __table_args__ = (Index("ix_job_usage_samples_job", "job_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)  # sys_cpu_percent, sys_rss_mb, sys_gpu_* ...
