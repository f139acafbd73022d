"""What a running job shows on the real cluster: its workers placed on the node the scheduler preferred, each
epoch line once in its log, and its workers' resource use sampled on a timer, so an epoch longer than the interval
still shows samples. (The test cluster has one node: choosing between nodes is covered by test_placement.)"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from app.client import Client
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.wait import wait_for

pytestmark = pytest.mark.ray

EPOCHS = 2


def test_epoch_lines_appear_once_and_usage_is_sampled_within_long_epochs(admin: Client, tmp_path: Path) -> None:
    train, _ = breast_cancer_split()
    # Many rows and one row per step: each epoch takes many seconds, far longer than the sampler's wait for the
    # first steps (FIRST_STEPS_GRACE_S) plus one interval; with warm workers, 8 copies took only about 4 s.
    version = upload_frame(admin, pd.concat([train] * 24, ignore_index=True), tmp_path, "runtime-long-epochs")
    admin.set_setting("metrics.usage_sample_s", 1)
    try:
        job = admin.create_job(
            dataset_version_id=version["id"], target_column=TARGET, epochs=EPOCHS, num_workers=2, batch_size=1
        )
        done = admin.wait_job(job["id"], timeout_s=600)
    finally:
        admin.set_setting("metrics.usage_sample_s", 10.0)
    assert done["status"] == "SUCCEEDED", done["message"]
    # The scheduler chose the (one) node for the workers and Ray Train placed them there through the label selector.
    starting = next(t for t in done["transitions"] if t["to_status"] == "STARTING")
    assert "Workers placed on the best-scoring nodes" in starting["message"], starting["message"]

    logs = admin.job_logs(job["id"])
    for epoch in range(1, EPOCHS + 1):  # rank 0 prints each epoch's line; Ray must not forward it twice
        assert len(re.findall(rf"\bepoch {epoch}/{EPOCHS} ", logs)) == 1, logs[-4000:]

    samples = admin.job_usage(job["id"])
    assert {s["rank"] for s in samples} == {0, 1}
    assert all(s["sys_rss_mb"] > 50 and s["sys_cpu_percent"] >= 0 for s in samples)
    first_epoch_at = done["metrics"][0]["time"]
    during_first_epoch = [s for s in samples if s["time"] < first_epoch_at]
    assert during_first_epoch, (samples[:3], first_epoch_at)
    assert any(s["sys_cpu_percent"] > 0 for s in samples)  # measured between samples, not a fresh 0 each time
    # Sampling ends with the job.
    count = len(samples)
    wait_for(lambda: admin.get_job(job["id"])["status"] == "SUCCEEDED", timeout_s=5)
    assert len(admin.job_usage(job["id"], limit=100_000)) <= count + 2
