"""The platform's own local Ray head: started with explicit ports, temp dir and auth mode, stopped by PID.

`ray stop` is never used: it kills every Ray process on the machine by name, other users' clusters too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from app.core.config import Settings


def ray_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.worker_env(with_secrets=True))
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # The head's own metrics endpoints sit on fixed default ports (44217, 44227) unless told otherwise: next to
    # the dashboard's port instead, so two platforms (or a platform and the test suite) on one host do not collide.
    env.setdefault("DASHBOARD_METRIC_PORT", str(settings.ray_dashboard_port + 1))
    env.setdefault("AUTOSCALER_METRIC_PORT", str(settings.ray_dashboard_port + 2))
    return env


def start_head(settings: Settings, log_path: Path) -> int:
    """Starts `ray start --head --block` in its own process session and returns its PID."""
    p = settings.ray_port
    ray_bin = Path(sys.executable).with_name("ray")
    cmd = [
        str(ray_bin), "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        f"--port={p}",
        f"--node-manager-port={p + 1}",
        f"--object-manager-port={p + 2}",
        f"--metrics-export-port={p + 3}",
        f"--dashboard-agent-listen-port={p + 4}",
        f"--dashboard-agent-grpc-port={p + 5}",
        f"--runtime-env-agent-port={p + 6}",
        f"--ray-client-server-port={p + 7}",
        f"--min-worker-port={p + 100}",
        f"--max-worker-port={p + 399}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={settings.ray_dashboard_port}",
        f"--temp-dir={settings.ray_temp_dir}",
    ]  # fmt: skip
    if settings.ray_num_cpus is not None:
        cmd.append(f"--num-cpus={settings.ray_num_cpus}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=ray_env(settings), start_new_session=True,
        )  # fmt: skip
    return proc.pid


def wait_until_ready(settings: Settings, pid: int | None, timeout_s: float = 120) -> None:
    """Waits until the dashboard (and with it the Jobs and Serve REST APIs) answers; `pid` is the head's, when
    the platform started it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid is not None and not psutil.pid_exists(pid):
            raise RuntimeError("The Ray head exited during start-up; see the log in the data dir.")
        try:
            if httpx.get(f"{settings.dashboard_url}/api/version", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"Ray's dashboard did not answer on {settings.dashboard_url} within {timeout_s:.0f} s.")


def stop_tree(pid: int, grace_s: float = 10) -> None:
    """Stops the process and everything it started: SIGTERM, then SIGKILL after a grace period."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root, *root.children(recursive=True)]
    # Processes that left the tree but kept the session (Ray re-parents some daemons) go too.
    sid = os.getsid(pid)
    procs += [p for p in psutil.process_iter() if _session_of(p) == sid and p not in procs]
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


def remove_cluster_marker(settings: Settings) -> None:
    marker = settings.ray_temp_dir / "ray_current_cluster"
    marker.unlink(missing_ok=True)


def wipe_temp_dir(settings: Settings) -> None:
    shutil.rmtree(settings.ray_temp_dir, ignore_errors=True)


def _session_of(proc: psutil.Process) -> int | None:
    try:
        return os.getsid(proc.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _signal(proc: psutil.Process, sig: signal.Signals) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass
