"""The walking skeleton over real HTTP on a real Ray cluster:
upload -> DDP training (2 workers) -> metrics while running -> model version -> deploy -> predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.client import ApiError, Client
from app.core.config import Settings
from app.storage import open_store
from tests.utils.factories import TARGET, breast_cancer_split, upload_frame
from tests.utils.wait import wait_for
from train_jobs.artifacts import load_artifact
from train_jobs.templates.tabular_mlp import predict

EPOCHS = 6


def test_upload_train_deploy_predict(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    train, held_out = breast_cancer_split()
    version = upload_frame(admin, train, tmp_path, "e2e-breast-cancer")
    assert version["num_rows"] == len(train)

    job = admin.create_job(
        dataset_version_id=version["id"], target_column=TARGET, epochs=EPOCHS, batch_size=32, num_workers=2
    )
    assert job["status"] == "QUEUED"
    assert job["config"]["num_workers"] == 2

    # Metrics are in the database while the job still runs.
    running = wait_for(
        lambda: (j := admin.get_job(job["id"]))["status"] == "RUNNING" and j["metrics"] and j,
        timeout_s=240,
        interval_s=0.2,
        what="a RUNNING job with its first metrics",
    )
    assert len(running["metrics"]) < EPOCHS
    assert {"step", "loss", "val_loss", "val_accuracy"} <= running["metrics"][0].keys()

    done = admin.wait_job(job["id"], timeout_s=300)
    assert done["status"] == "SUCCEEDED", done["message"]
    assert [m["step"] for m in done["metrics"]] == list(range(1, EPOCHS + 1))
    assert "val_accuracy" in admin.job_logs(job["id"])

    model_version = admin.get_model_version(done["model_version_id"])
    assert model_version["stage"] == "DRAFT"
    assert model_version["training_job_id"] == job["id"]
    assert model_version["dataset_version_id"] == version["id"]
    assert model_version["signature"]["target"] == TARGET
    assert model_version["metrics"]["val_accuracy"] == max(m["val_accuracy"] for m in done["metrics"])

    deployment = admin.wait_deployment(admin.deploy(model_version["id"])["id"], timeout_s=240)
    assert deployment["status"] == "RUNNING", deployment["message"]
    try:
        features = held_out.drop(columns=[TARGET])
        rows = json.loads(features.to_json(orient="records"))
        served = admin.predict(deployment["id"], rows)

        model, spec = load_artifact(open_store(platform_settings), model_version["artifact_key"])
        offline = predict(model, spec, features)
        assert served["labels"] == offline["labels"]
        np.testing.assert_allclose(served["probabilities"], offline["probabilities"], rtol=1e-5, atol=1e-6)
        accuracy = np.mean(np.array(served["labels"]) == held_out[TARGET].to_numpy())
        assert accuracy >= 0.85

        first = rows[0]
        bad_inputs = {
            "missing column": [{k: v for k, v in first.items() if k != "mean radius"}],
            "non-numeric value": [{**first, "mean radius": "large"}],
            "no rows": [],
        }
        for case, bad_rows in bad_inputs.items():
            with pytest.raises(ApiError) as err:
                admin.predict(deployment["id"], bad_rows)
            assert err.value.status == 422, case
        with pytest.raises(ApiError, match="mean radius"):
            admin.predict(deployment["id"], bad_inputs["missing column"])
    finally:
        admin.delete_deployment(deployment["id"])
    with pytest.raises(ApiError) as err:
        admin.get_deployment(deployment["id"])
    assert err.value.status == 404
