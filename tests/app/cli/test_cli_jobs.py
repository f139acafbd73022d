"""`aiplatform job ...` against the running platform."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd

from app.client import Client
from app.contracts.status import JobStatus
from app.core.config import Settings
from app.db.models import TrainingJob
from app.db.session import session_scope
from app.services.training import job_metrics
from tests.conftest import ADMIN_PASSWORD
from tests.utils.factories import upload_frame


def test_job_steps_prints_the_logged_training_steps(
    cli,  # noqa: ANN001
    admin: Client,
    platform_settings: Settings,
    tmp_path: Path,
) -> None:
    cli("login", "-u", "admin", "-p", ADMIN_PASSWORD)
    frame = pd.DataFrame({"x": range(8), "y": [0, 1] * 4})
    version = upload_frame(admin, frame, tmp_path, f"cli-{uuid.uuid4().hex[:6]}")
    with session_scope(platform_settings.database_url) as s:
        job = TrainingJob(name="cli-steps", owner_id=admin.account()["id"], dataset_version_id=version["id"],
                          template="tabular_mlp", config={"epochs": 2}, status=JobStatus.SUCCEEDED)  # fmt: skip
        s.add(job)
        s.flush()
        rows = [
            {"step": 5 * i, "epoch": 1 + i // 11, "loss": 1 / i, "lr": 0.001, "samples_per_s": 900.0}
            for i in range(1, 21)
        ]
        job_metrics.record_training_steps(s, job_id=job.id, steps=rows)
        job_id = job.id
    output = cli("job", "steps", str(job_id), "--max-points", "3")
    assert output.splitlines()[0] == "20 steps logged"
    assert [line.split()[1] for line in output.splitlines()[1:]] == ["5", "55", "100"]
    assert "loss 1 " in output and "samples_per_s 900" in output
