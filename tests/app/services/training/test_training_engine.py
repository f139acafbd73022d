"""The training engine on the real cluster: stop, retry from the last checkpoint, a killed worker resumed, live
log stream, delete; the queue by priority on a cluster too small for all jobs; a restart of the control plane."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import select

from app.client import ApiError, Client
from app.cluster import jobs as ray_jobs
from app.core.config import Settings
from app.db.models import JobStepMetric
from app.db.session import session_scope
from app.launcher import RunningPlatform
from app.storage import open_store
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.wait import wait_for

pytestmark = pytest.mark.ray


def cluster_processes(platform: RunningPlatform, marker: str) -> list[psutil.Process]:
    """Processes of the test cluster only (descendants of its head), whose command line contains `marker`."""
    assert platform.head_pid is not None
    found = []
    for proc in psutil.Process(platform.head_pid).children(recursive=True):
        try:
            if marker in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def job_worker_pids(logs: str) -> list[int]:
    """The PIDs of a job's current Train workers: those of the last worker group its driver reported starting."""
    return [
        int(pid) for pid in re.findall(r"pid=(\d+)\) world_rank=", logs.rsplit("Started training worker group", 1)[-1])
    ]


def steps(client: Client, job_id: int) -> list[int]:
    return [m["step"] for m in client.get_job(job_id)["metrics"]]


def test_stop_retry_worker_kill_resume_logs_and_delete(
    admin: Client, running_platform: RunningPlatform, platform_settings: Settings, tmp_path: Path
) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train, tmp_path, "engine-lifecycle")
    epochs = 15
    job = admin.create_job(
        dataset_version_id=version["id"],
        target_column=TARGET,
        epochs=epochs,
        num_workers=2,
        batch_size=16,
        optimizer="sgd",
        learning_rate=0.05,
        weight_decay=1e-4,
        lr_scheduler={"type": "plateau", "patience": 1, "factor": 0.5},
        metric="val_loss",
        log_every_n_steps=4,
    )
    job_id = job["id"]
    assert job["status"] == "QUEUED"
    assert job["config"]["mode"] == "min"

    wait_for(lambda: len(steps(admin, job_id)) >= 2, timeout_s=240, what="two epochs of the first attempt")
    wait_for(lambda: admin.job_steps(job_id)["total_steps"], timeout_s=30, what="training steps during the run")
    stopped = admin.stop_job(job_id)
    assert stopped["status"] == "STOPPED"
    wait_for(lambda: ray_jobs.state(platform_settings, stopped["ray_job_id"]).status == "STOPPED", timeout_s=60)
    with pytest.raises(ApiError) as err:
        admin.retry_job(999_999)
    assert err.value.status == 404

    retried = admin.retry_job(job_id)
    assert retried["status"] == "QUEUED"

    # The log stream delivers lines while the job runs.
    lines: list[tuple[float, str]] = []
    follower = threading.Thread(
        target=lambda: lines.extend((time.monotonic(), line) for line in admin.follow_job_logs(job_id)), daemon=True
    )
    follower.start()
    wait_for(
        lambda: [t for t, line in lines if "Resumed from the checkpoint of epoch" in line],
        timeout_s=240,
        what="the retried attempt resuming from its checkpoint",
    )
    wait_for(lambda: admin.get_job(job_id)["status"] == "RUNNING", timeout_s=30, what="RUNNING after the resume")

    # Kill one training worker mid-run: Ray Train restarts the group from the latest checkpoint.
    done_before = max(steps(admin, job_id))
    wait_for(lambda: max(steps(admin, job_id)) > done_before, timeout_s=120, what="an epoch after the resume")
    workers = job_worker_pids(admin.job_logs(job_id))  # not the pool's warm workers: they are Train's too
    assert len(workers) == 2, admin.job_logs(job_id)[-3000:]
    os.kill(workers[0], signal.SIGKILL)

    done = admin.wait_job(job_id, timeout_s=400)
    assert done["status"] == "SUCCEEDED", done["message"]
    follower.join(timeout=60)
    assert not follower.is_alive(), "the log stream did not end with the job"
    assert [m["step"] for m in done["metrics"]] == list(range(1, epochs + 1))  # continuous, no repeats
    assert done["attempts"] == 2 + len([t for t in done["transitions"] if t["message"].startswith("Submission")])
    # Each step carries the job's resource use, summed over its two workers.
    assert done["metrics"][-1]["sys_rss_mb"] > 100 and "sys_cpu_percent" in done["metrics"][-1]
    assert any(re.search(rf"\bepoch \d+/{epochs} ", line) for _, line in lines)
    logs = admin.job_logs(job_id)
    assert logs.count("Resumed from the checkpoint of epoch") >= 2, logs[-3000:]  # the retry and the worker kill
    # The attempt's driver took over the workers its launcher started, once: the restart after the kill started its own.
    assert logs.count("Taking over the 2 worker(s) started with the job.") == 1, logs[-3000:]
    # A submission Ray refused (it answers 500 now and then under load) is retried: leave those pairs out.
    retried = [t for t in done["transitions"] if t["message"].startswith("Submission failed")]
    moves = [(t["from_status"], t["to_status"]) for t in done["transitions"] if t not in retried]
    for _ in retried:
        moves.remove(("QUEUED", "STARTING"))
    assert moves == [
        (None, "CREATED"),
        ("CREATED", "QUEUED"),
        ("QUEUED", "STARTING"),
        ("STARTING", "RUNNING"),
        ("RUNNING", "STOPPED"),
        ("STOPPED", "QUEUED"),
        ("QUEUED", "STARTING"),
        ("STARTING", "RUNNING"),
        ("RUNNING", "SUCCEEDED"),
    ]

    model_version = admin.get_model_version(done["model_version_id"])
    lineage = model_version["lineage"]
    assert lineage["config"]["optimizer"] == "sgd" and len(lineage["code_hash"]) == 64
    assert lineage["dataset_version_id"] == version["id"]
    assert model_version["metrics"]["val_loss"] == min(m["val_loss"] for m in done["metrics"][:epochs])
    assert lineage["final_metrics"]["val_loss"] == done["metrics"][-1]["val_loss"]
    assert lineage["checkpoint"]

    # Training steps every 4 batches, over every epoch; those a resume trained again were replaced, not repeated.
    logged = admin.job_steps(job_id)["points"]
    assert [p["step"] for p in logged] == list(range(4, logged[-1]["step"] + 1, 4))
    assert [p["epoch"] for p in logged] == sorted(p["epoch"] for p in logged) and logged[-1]["epoch"] == epochs
    assert all(p["loss"] > 0 and p["lr"] > 0 and p["samples_per_s"] > 0 for p in logged)
    assert len(admin.job_steps(job_id, max_points=7)["points"]) == 7

    page = admin.job_metrics(job_id, offset=2, limit=3)
    assert page["total_steps"] == epochs and [p["step"] for p in page["points"]] == [3, 4, 5]
    assert len(admin.job_metrics(job_id, max_points=4)["points"]) == 4

    store = open_store(platform_settings)
    wait_for(lambda: admin.get_job(job_id) and list(store.list(f"jobs/{job_id}/")), timeout_s=30, what="kept logs")
    assert list(store.list(f"checkpoints/job-{job_id}/"))
    admin.delete_job(job_id)
    with session_scope(platform_settings.database_url) as session:
        assert session.scalars(select(JobStepMetric).where(JobStepMetric.job_id == job_id)).first() is None
    assert list(store.list(f"checkpoints/job-{job_id}/")) == []
    assert list(store.list(f"jobs/{job_id}/")) == []
    with pytest.raises(ApiError) as err:
        admin.get_job(job_id)
    assert err.value.status == 404
    assert admin.get_model_version(model_version["id"])["training_job_id"] is None


def test_queue_priority_restart_and_stop_frees_resources(
    admin: Client, running_platform: RunningPlatform, platform_settings: Settings, tmp_path: Path
) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train.head(120), tmp_path, "engine-queue")
    base = {"dataset_version_id": version["id"], "target_column": TARGET, "num_workers": 1}

    # The test cluster is one node with 4 CPUs: these can never run.
    with pytest.raises(ApiError, match="no node of the cluster is that large") as err:
        admin.create_job(**base, cpus_per_worker=8)
    assert err.value.status == 422
    with pytest.raises(ApiError, match="at most 4"):
        admin.create_job(**{**base, "num_workers": 5})
    with pytest.raises(ApiError, match="GPU"):
        admin.create_job(**base, gpus_per_worker=1)

    # A long job holds 3 of the 4 CPUs; two jobs wanting 3 each wait, the higher priority one first.
    blocker = admin.create_job(**base, cpus_per_worker=3, epochs=10_000, checkpoint_interval=1000)
    wait_for(lambda: admin.get_job(blocker["id"])["status"] == "RUNNING", timeout_s=240, what="the blocker")
    low = admin.create_job(**base, cpus_per_worker=3, epochs=1, priority=0, name="queue-low")
    high = admin.create_job(**base, cpus_per_worker=3, epochs=1, priority=5, name="queue-high")
    waiting = wait_for(
        lambda: (j := admin.get_job(high["id"]))["message"].startswith("Waiting for resources") and j,
        timeout_s=30,
    )
    assert waiting["status"] == "QUEUED" and "CPU 3 (1 free)" in waiting["message"]
    assert "behind job" in admin.get_job(low["id"])["message"]

    # Restart the control plane (kill its replica): Serve brings it back, the job runs on, the loop resumes.
    before = len(steps(admin, blocker["id"]))
    replicas = cluster_processes(running_platform, "ApiIngress")
    assert replicas, "no API replica found"
    for proc in replicas:
        os.kill(proc.pid, signal.SIGKILL)
    wait_for(lambda: _healthy(running_platform), timeout_s=120, what="the API back after its restart")
    wait_for(lambda: len(steps(admin, blocker["id"])) > before, timeout_s=60, what="the job still reporting")
    assert admin.get_job(blocker["id"])["status"] == "RUNNING"

    # Stopping the blocker frees its CPUs: the high-priority job starts, the low one keeps waiting.
    stopped = admin.stop_job(blocker["id"])
    assert stopped["status"] == "STOPPED"
    wait_for(
        lambda: admin.get_job(high["id"])["status"] in ("STARTING", "RUNNING", "SUCCEEDED"),
        timeout_s=60,
        what="the high-priority job to start once the blocker's resources are free",
    )
    wait_for(
        lambda: ray_jobs.state(platform_settings, stopped["ray_job_id"]).status == "STOPPED",
        timeout_s=60,
        what="Ray to end the stopped job's driver",
    )
    low_now = admin.get_job(low["id"])
    assert low_now["status"] == "QUEUED", low_now
    stopped_low = admin.stop_job(low["id"])  # a queued job stops without ever reaching Ray
    assert stopped_low["status"] == "STOPPED" and stopped_low["ray_job_id"] is None
    high_done = admin.wait_job(high["id"], timeout_s=240)
    assert high_done["status"] == "SUCCEEDED", high_done["message"]
    order = {j["id"]: j["started_at"] for j in (admin.get_job(blocker["id"]), high_done)}
    assert order[blocker["id"]] < order[high["id"]]


def _healthy(platform: RunningPlatform) -> bool:
    try:
        return httpx.get(f"{platform.api_url}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
