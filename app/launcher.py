"""Starting and stopping the whole platform on one machine: Ray head, schema, admin, Serve applications.

The PID of everything the platform started is kept in `DATA_DIR/run/platform.json`; `stop` ends exactly that.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from app.cluster import local_ray
from app.core.config import Settings
from app.db.session import session_scope, upgrade_schema
from app.services.identity import users
from app.services.models import deployments


@dataclass(frozen=True)
class RunningPlatform:
    head_pid: int | None  # None when the platform runs on a cluster it did not start
    api_url: str
    dashboard_url: str


def state_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / "platform.json"


def find_running(settings: Settings) -> RunningPlatform | None:
    """The platform started from this data dir, if its processes are alive."""
    path = state_file(settings)
    if not path.exists():
        return None
    running = RunningPlatform(**json.loads(path.read_text()))
    if running.head_pid is not None and not psutil.pid_exists(running.head_pid):
        return None
    return running


@dataclass(frozen=True)
class StartResult:
    platform: RunningPlatform
    started: bool  # False: it was already running
    admin_password: str | None  # generated at this first start; shown once, kept nowhere


def start(settings: Settings, *, timeout_s: float = 300) -> StartResult:
    """Starts the platform, or finds the one already running."""
    running = find_running(settings)
    if running:
        if not _healthy(running.api_url):
            raise RuntimeError(
                f"The platform's Ray head (PID {running.head_pid}) is alive but {running.api_url} does not answer. "
                "Wait a minute if it is still starting, or run `aiplatform stop` and start again."
            )
        return StartResult(running, started=False, admin_password=None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_schema(settings.database_url)
    with session_scope(settings.database_url) as session:
        admin_password = users.ensure_admin(session, settings)

    head_pid = None
    if not settings.ray_address:
        local_ray.remove_cluster_marker(settings)
        head_pid = local_ray.start_head(settings, settings.data_dir / "logs" / "ray-head.log")
    running = RunningPlatform(head_pid=head_pid, api_url=settings.api_url, dashboard_url=settings.dashboard_url)
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(running)))
    try:
        local_ray.wait_until_ready(settings, head_pid, timeout_s=timeout_s)
        with session_scope(settings.database_url) as session:
            deployments.apply_desired(session, settings)
        _wait_healthy(running.api_url, timeout_s)
    except BaseException:
        stop(settings)
        raise
    return StartResult(running, started=True, admin_password=admin_password)


def stop(settings: Settings) -> bool:
    """Stops what this platform started (by PID). Returns False when nothing was running."""
    path = state_file(settings)
    if not path.exists():
        return False
    running = RunningPlatform(**json.loads(path.read_text()))
    if running.head_pid is not None:
        local_ray.stop_tree(running.head_pid)
        local_ray.remove_cluster_marker(settings)
    path.unlink(missing_ok=True)
    return True


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/api/v1/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_healthy(api_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _healthy(api_url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"The API at {api_url} did not become healthy within {timeout_s:.0f} s.")
