"""The kinds of run: rows whose work is one Ray job at a time. Each kind says which table holds its rows, how its
Ray job is named and started, in which states that job may still run, where its logs are kept, and what else
changes with its status; app.runs.lifecycle and app.runs.reconcile do the rest, the same way for every kind."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.contracts.status import JobStatus, TrialStatus
from app.db.models import PipelineRun, QualityReport, TrainingJob, TuningRun, TuningTrial


class RunRow(Protocol):
    """The columns every run's row has."""

    id: Any  # Mapped[int] on the models
    status: Any
    message: Any
    ray_job_id: Any
    logs_key: Any
    started_at: Any
    finished_at: Any


# (session, row, previous status, new status, when): what else changes with the status
OnChange = Callable[[Session, Any, JobStatus, JobStatus, dt.datetime], None]


@dataclass(frozen=True)
class RunKind:
    name: str  # in run_transitions.kind and in log keys
    noun: str  # in messages: "job", "tuning run", ...
    model: type[Any]  # the row's model, with RunRow's columns
    entrypoint: str  # the module its Ray job runs (`python -m ...`)
    # States in which its Ray job may run: the reconcile loop closes such a row once Ray ended or forgot the job.
    open: tuple[JobStatus, ...]
    # The state a run leaves when its work begins (the driver, or for a training job its workers, mark it RUNNING).
    runs_from: JobStatus
    submission_id: Callable[[Any], str]
    log_key: Callable[[Any], str]  # where the logs of its latest Ray job are kept once that job ends
    running_message: Callable[[Any], str] = lambda _row: ""
    delete_if_refused: bool = False  # submitted on creation: a row Ray refused is deleted again (the call fails)
    on_change: OnChange | None = None


def _training_job_change(
    _session: Session, job: TrainingJob, previous: JobStatus, status: JobStatus, now: dt.datetime
) -> None:
    if status == JobStatus.QUEUED and previous != JobStatus.STARTING:  # a failed submission keeps its place
        job.queued_at = now


def _tuning_run_change(
    session: Session, run: TuningRun, _previous: JobStatus, status: JobStatus, _now: dt.datetime
) -> None:
    if status.is_terminal:  # trials still marked running (or paused) end with the run
        session.execute(
            update(TuningTrial)
            .where(TuningTrial.run_id == run.id, TuningTrial.status.in_([TrialStatus.RUNNING, TrialStatus.PAUSED]))
            .values(status=JobStatus.STOPPED if status != JobStatus.FAILED else JobStatus.FAILED)
        )
    if status == JobStatus.QUEUED:
        run.ray_job_id = None  # requeued after a failed submission: no Ray job backs it


TRAINING_JOB = RunKind(
    name="training_job",
    noun="job",
    model=TrainingJob,
    # The launcher starts the job's worker group (or takes warm workers), then runs the template's driver.
    entrypoint="train_jobs.launch",
    open=(JobStatus.STARTING, JobStatus.RUNNING),
    runs_from=JobStatus.STARTING,
    submission_id=lambda job: f"aip-training-job-{job.id}-a{job.attempts}",
    log_key=lambda job: f"jobs/{job.id}/attempt-{job.attempts}.log",
    running_message=lambda job: f"Training started (attempt {job.attempts}).",
    on_change=_training_job_change,
)
TUNING_RUN = RunKind(
    name="tuning_run",
    noun="tuning run",
    model=TuningRun,
    entrypoint="train_jobs.tune_tabular",
    open=(JobStatus.STARTING, JobStatus.RUNNING),
    runs_from=JobStatus.STARTING,
    submission_id=lambda run: f"aip-tuning-run-{run.id}",
    log_key=lambda run: f"tuning/{run.id}/driver.log",
    on_change=_tuning_run_change,
)
PIPELINE_RUN = RunKind(
    name="pipeline_run",
    noun="pipeline run",
    model=PipelineRun,
    entrypoint="train_jobs.preprocess",
    open=(JobStatus.QUEUED, JobStatus.RUNNING),
    runs_from=JobStatus.QUEUED,
    submission_id=lambda run: f"aip-pipeline-{run.id}",
    log_key=lambda run: f"pipelines/{run.id}/driver.log",
    delete_if_refused=True,
)
QUALITY_REPORT = RunKind(
    name="quality_report",
    noun="quality check",
    model=QualityReport,
    entrypoint="train_jobs.data_quality",
    open=(JobStatus.QUEUED, JobStatus.RUNNING),
    runs_from=JobStatus.QUEUED,
    submission_id=lambda report: f"aip-quality-{report.id}",
    log_key=lambda report: f"quality/{report.id}/driver.log",
    delete_if_refused=True,
)
KINDS = (TRAINING_JOB, TUNING_RUN, PIPELINE_RUN, QUALITY_REPORT)
