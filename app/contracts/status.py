"""Every status a platform row or a Ray job can be in, in one place (the database stores their string values)."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A row backed by a Ray job: training jobs and tuning runs (all of these), quality checks and pipeline runs
    (QUEUED, RUNNING, SUCCEEDED, FAILED: `DataJobStatus`)."""

    CREATED = "CREATED"  # saved, not yet asked to run
    QUEUED = "QUEUED"  # waiting for the scheduler to find room on the cluster
    STARTING = "STARTING"  # a Ray job was submitted; its workers are starting
    RUNNING = "RUNNING"  # the training loop runs
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def is_terminal(self) -> bool:
        return self in JOB_ENDED

    @property
    def holds_resources(self) -> bool:
        return self in JOB_ACTIVE


JOB_ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)
JOB_ACTIVE = (JobStatus.STARTING, JobStatus.RUNNING)  # its Ray job holds cluster resources


class DataJobStatus(StrEnum):
    """States of a quality check or a pipeline run (a Ray job each): the ones of `JobStatus` they pass through."""

    QUEUED = JobStatus.QUEUED.value
    RUNNING = JobStatus.RUNNING.value
    SUCCEEDED = JobStatus.SUCCEEDED.value
    FAILED = JobStatus.FAILED.value


class TrialStatus(StrEnum):
    """A tuning trial: a run's trials are rows its Tune callback keeps up to date."""

    RUNNING = JobStatus.RUNNING.value
    PAUSED = "PAUSED"  # PBT paused it (to exploit, or to wait for its population); it runs again
    EARLY_STOPPED = "EARLY_STOPPED"  # ASHA ended it before max_t
    SUCCEEDED = JobStatus.SUCCEEDED.value
    FAILED = JobStatus.FAILED.value
    STOPPED = JobStatus.STOPPED.value  # its run ended first


class DeploymentStatus(StrEnum):
    DEPLOYING = "DEPLOYING"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    DELETING = "DELETING"


class UploadStatus(StrEnum):
    OPEN = "OPEN"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"


# The states Ray's job submission reports once a job's driver has exited (its `JobStatus.is_terminal`); the others
# are PENDING and RUNNING.
RAY_JOB_ENDED = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
