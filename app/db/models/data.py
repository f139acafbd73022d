"""Datasets, their versions, uploads, preprocessing runs and quality reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.contracts.status import JobStatus
from app.db.models.base import Base, utcnow


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(1024), default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Target, numeric and categorical columns: what preprocessing pipelines read when a step names no columns.
    feature_config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.version", cascade="all, delete-orphan"
    )


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(512))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    num_rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Lineage: the version this one was derived from and the fitted pipeline state (JSON) that derived it.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True)
    pipeline: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    state_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # once, after creation
    dataset: Mapped[Dataset] = relationship(back_populates="versions")


class UploadSession(Base):
    """A resumable chunked upload: declared name, size, sha256 and chunk size; chunks arrive in any order."""

    __tablename__ = "upload_sessions"
    __table_args__ = (Index("ix_upload_sessions_status_updated", "status", "updated_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex: not guessable
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    file_name: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    chunk_size: Mapped[int] = mapped_column(BigInteger)
    num_chunks: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # "direct": parts of an S3 multipart upload (`multipart_id`) that clients may send straight to S3.
    mode: Mapped[str] = mapped_column(String(8), default="api", server_default="api")
    multipart_id: Mapped[str | None] = mapped_column(String(255), nullable=True)


class UploadChunk(Base):
    __tablename__ = "upload_chunks"
    session_id: Mapped[str] = mapped_column(ForeignKey("upload_sessions.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the S3 part's, in direct mode


class PipelineRun(Base):
    """A preprocessing pipeline run on one version (a Ray job); on success it made `output_version_id`."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index("ix_pipeline_runs_status_created", "status", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    input_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    output_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    steps: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    message: Mapped[str] = mapped_column(Text, default="")
    ray_job_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    logs_key: Mapped[str | None] = mapped_column(String(512), nullable=True)  # logs kept after Ray forgets
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class QualityReport(Base):
    """A quality check of one dataset version, run as a Ray job; `result` holds counts, examples and the score."""

    __tablename__ = "quality_reports"
    __table_args__ = (Index("ix_quality_reports_version_created", "version_id", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    ray_job_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    logs_key: Mapped[str | None] = mapped_column(String(512), nullable=True)  # logs kept after Ray forgets
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
