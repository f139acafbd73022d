"""Tuning runs and training jobs in one queue on the real cluster (4 CPUs), too small for both at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.client import ApiError, Client
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.wait import wait_for

pytestmark = pytest.mark.ray

SEARCH = {
    "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 0.1}},
    "metric": "val_loss",
    "num_samples": 3,
    "max_concurrent_trials": 3,
    "max_t": 2,
    "scheduler": "fifo",
    "search_alg": "random",
    "seed": 1,
}


def test_a_tuning_run_waits_in_the_training_queue_for_all_its_trials(admin: Client, tmp_path: Path) -> None:
    train, _ = breast_cancer_split()
    version = upload_frame(admin, train.head(120), tmp_path, "queue-tune")
    base = {"dataset_version_id": version["id"], "target_column": TARGET, "num_workers": 1}

    # Five trials of one CPU at once can never fit 4 CPUs: refused at once, nothing recorded.
    before = len(admin.list_tunes())
    with pytest.raises(ApiError, match="Lower max_concurrent_trials") as err:
        admin.create_tune(**base, search={**SEARCH, "num_samples": 5, "max_concurrent_trials": 5})
    assert err.value.status == 422 and len(admin.list_tunes()) == before

    # A job holds 2 of the 4 CPUs: the run (3 trials x 1 CPU) waits, and a later 2-CPU job waits behind it
    # although it would fit now.
    blocker = admin.create_job(**base, cpus_per_worker=2, epochs=10_000, checkpoint_interval=1000)
    wait_for(lambda: admin.get_job(blocker["id"])["status"] == "RUNNING", timeout_s=240, what="the blocker")
    run = admin.create_tune(**base, search=SEARCH)
    assert run["status"] == "QUEUED" and run["ray_job_id"] is None
    later = admin.create_job(**base, cpus_per_worker=2, epochs=1, name="queue-after-tune")
    waiting = wait_for(
        lambda: (r := admin.get_tune(run["id"]))["message"].startswith("Waiting for resources") and r, timeout_s=30
    )
    assert waiting["status"] == "QUEUED" and "CPU 3 (" in waiting["message"], waiting["message"]
    queued = wait_for(lambda: (j := admin.get_job(later["id"]))["message"].startswith("Waiting behind") and j)
    assert queued["status"] == "QUEUED" and f"tuning run {run['id']}" in queued["message"]

    # The blocker stops: the run starts first (queue order); the job waits for the run's CPUs, then runs.
    admin.stop_job(blocker["id"])
    wait_for(
        lambda: admin.get_tune(run["id"])["status"] in ("STARTING", "RUNNING", "SUCCEEDED"),
        timeout_s=60,
        what="the run to start once the blocker's CPUs are free",
    )
    wait_for(lambda: admin.get_job(later["id"])["message"].startswith("Waiting for resources"), timeout_s=30)
    done = admin.wait_tune(run["id"], timeout_s=600)
    assert done["status"] == "SUCCEEDED", done["message"] + admin.tune_logs(run["id"])[-3000:]
    assert len(done["trials"]) == 3 and done["ray_job_id"]
    job_done = admin.wait_job(later["id"], timeout_s=300)
    assert job_done["status"] == "SUCCEEDED", job_done["message"]
    started = next(t for t in job_done["transitions"] if t["to_status"] == "STARTING")
    assert started["created_at"] >= done["finished_at"]
