"""The status enums agree with what they mirror: Ray's job states, and the shared states of a row backed by a job."""

from __future__ import annotations

from ray.job_submission import JobStatus as RayJobStatus

from app.contracts.status import RAY_JOB_ENDED, DataJobStatus, JobStatus, TrialStatus


def test_ended_ray_jobs_are_the_ones_ray_calls_terminal() -> None:
    assert {status.value for status in RayJobStatus if status.is_terminal()} == RAY_JOB_ENDED


def test_data_jobs_and_trials_share_the_job_states_they_pass_through() -> None:
    assert {s.value for s in DataJobStatus} <= {s.value for s in JobStatus}
    assert {s.value for s in TrialStatus} - {s.value for s in JobStatus} == {"PAUSED", "EARLY_STOPPED"}
