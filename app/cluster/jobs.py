"""How work reaches Ray: submitting, inspecting and stopping Ray jobs through the Jobs API."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from functools import lru_cache

from app.core.config import Settings
from app.core.errors import AipError, ErrorCode


@dataclass(frozen=True)
class RayJobState:
    status: str  # PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    message: str


# Ray Train V2 turns a worker's `print` into a log record that its console handler writes, and also still prints
# it because Ray wraps the worker's stdout; Ray forwards both copies to the job's log. Off, each line appears once.
# Train's preemption watcher (one more process per run, polling for spot-instance drains) is off: the platform's
# nodes are owned boxes, and on a small node that process competes with the workers' start-up. Train's Prometheus
# metrics (controller and worker callbacks) are off too: the platform records its own, and they only add set-up work.
# The controller collects reports when it polls its workers: every 0.5 s instead of 2 s, so a metric reaches the
# database (and the UI) about a second sooner, for one cheap call per worker and poll.
TRAIN_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
}


@lru_cache(maxsize=4)
def _client(dashboard_url: str):  # noqa: ANN202 - ray is imported lazily
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(dashboard_url)


def job_env(settings: Settings) -> dict[str, str]:
    """The environment of the platform's Ray jobs (and of the warm workers they take over)."""
    return {**settings.worker_env(), **TRAIN_ENV}


def submit(settings: Settings, *, submission_id: str, module: str, args: list[str]) -> str:
    """Runs `python -m module args...` as a Ray job with the platform's settings in its environment."""
    entrypoint = shlex.join([sys.executable, "-m", module, *args])
    try:
        return _client(settings.dashboard_url).submit_job(
            entrypoint=entrypoint,
            submission_id=submission_id,
            runtime_env={"env_vars": job_env(settings)},
        )
    except Exception as e:  # the client raises RuntimeError/ConnectionError with Ray's text
        raise AipError(ErrorCode.UNAVAILABLE, f"Could not submit to Ray at {settings.dashboard_url}: {e}") from e


def state(settings: Settings, submission_id: str) -> RayJobState | None:
    """The job's state in Ray, or None when Ray does not know it (e.g. the cluster was restarted)."""
    try:
        info = _client(settings.dashboard_url).get_job_info(submission_id)
    except RuntimeError as e:
        if "does not exist" in str(e) or "404" in str(e):
            return None
        raise
    return RayJobState(status=str(info.status.value), message=info.message or "")


def logs(settings: Settings, submission_id: str) -> str:
    return _client(settings.dashboard_url).get_job_logs(submission_id)


def stop(settings: Settings, submission_id: str) -> None:
    _client(settings.dashboard_url).stop_job(submission_id)
