"""The reconcile loop closes job rows that Ray no longer backs, and stop ends a running job."""

from __future__ import annotations

from pathlib import Path

from app.client import Client
from app.cluster import jobs as ray_jobs
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.db.models import TrainingJob
from app.db.session import session_scope
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.wait import wait_for


def test_running_row_without_ray_job_is_failed(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train.head(40), tmp_path, "reconcile-orphan")
    with session_scope(platform_settings.database_url) as session:
        job = TrainingJob(
            name="orphan",
            owner_id=1,
            dataset_version_id=version["id"],
            template="tabular_mlp",
            config={},
            status=JobStatus.RUNNING,
            ray_job_id="aip-training-job-that-ray-never-saw",
        )
        session.add(job)
        session.flush()
        job_id = job.id
    done = wait_for(lambda: (j := admin.get_job(job_id))["status"] == "FAILED" and j, timeout_s=30)
    assert "no longer knows" in done["message"]


def test_stop_a_running_job(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train, tmp_path, "reconcile-stop")
    job = admin.create_job(dataset_version_id=version["id"], target_column=TARGET, epochs=5000, num_workers=1)
    wait_for(lambda: admin.get_job(job["id"])["status"] == "RUNNING", timeout_s=120)
    stopped = admin.stop_job(job["id"])
    assert stopped["status"] == "STOPPED"
    # Ray ends the job too (the scheduler submitted it under ray_job_id); the row stays STOPPED, no model.
    ray_state = wait_for(
        lambda: (s := ray_jobs.state(platform_settings, stopped["ray_job_id"])) and s.status == "STOPPED"
    )
    assert ray_state
    final = admin.get_job(job["id"])
    assert final["status"] == "STOPPED"
    assert final["model_version_id"] is None
