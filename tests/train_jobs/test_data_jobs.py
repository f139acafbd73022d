"""Data jobs on the real platform: a quality check and a preprocessing pipeline as Ray jobs over Ray Data, the
training gate on a report's score, and a model trained on a pipeline-made version served on raw rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.client import ApiError, Client
from app.core.config import Settings
from app.services.data import blobs
from app.services.data.pipeline_transform import fit_transform, transform
from app.services.data.quality_checks import QualityConfig, check
from app.storage import open_store
from tests.app.services.data.test_quality_checks import messy_csv
from tests.train_jobs.test_streaming_fit import assert_state_equal
from tests.utils.factories import TARGET, breast_cancer_split
from train_jobs.artifacts import load_artifact
from train_jobs.templates.tabular_mlp import predict

pytestmark = pytest.mark.ray


def wait_done(client: Client, path: str, timeout_s: float = 240) -> dict:
    return client._wait(lambda: client._call("GET", path), lambda r: r["status"] in ("SUCCEEDED", "FAILED"), timeout_s)


def test_quality_job_and_training_gate(admin: Client, tmp_path: Path) -> None:
    path = messy_csv(tmp_path / "messy.csv")
    version = admin.upload(admin.create_dataset("quality-job")["id"], path)
    config = {"key_columns": ["id"], "iqr_factor": 1.5, "z_threshold": 3.0, "max_examples": 3}
    report = admin._call("POST", f"/dataset/version/{version['id']}/quality", json=config)
    assert report["status"] == "QUEUED"
    done = wait_done(admin, f"/dataset/quality/{report['id']}")
    assert done["status"] == "SUCCEEDED", done["message"]
    expected = check(pd.read_csv(path, dtype=str), QualityConfig(**config))
    assert done["result"] == json.loads(json.dumps(expected))  # Ray Data read the same cells pandas does
    assert done["score"] == expected["score"]
    assert done["result"]["duplicates"]["duplicate_rows"] == 1

    with pytest.raises(ApiError) as err:
        admin._call("POST", f"/dataset/version/{version['id']}/quality", json={"key_columns": ["nope"]})
    assert err.value.status == 422 and "nope" in str(err.value)
    with pytest.raises(ApiError) as err:
        admin.create_job(dataset_version_id=version["id"], target_column="city", min_quality_score=0.99)
    assert err.value.status == 422 and f"scored {done['score']:.3f}" in str(err.value)


def test_quality_job_on_json_lines_mixing_numbers_and_text(admin: Client, tmp_path: Path) -> None:
    """The messy file as JSON lines: ages are numbers, with one "abc" among them, which pyarrow's JSON reader
    refuses; the platform reads such a column as text and the check counts what the CSV's check counts."""
    csv_path = messy_csv(tmp_path / "messy.csv")
    cells = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    path = tmp_path / "messy.jsonl"
    with path.open("w") as f:
        for row in cells.to_dict("records"):
            age = int(row["age"]) if row["age"].isdigit() else row["age"] or None
            record = {"id": int(row["id"]), "age": age, "city": row["city"] or None, "score": float(row["score"])}
            f.write(json.dumps(record) + "\n")
    version = admin.upload(admin.create_dataset("quality-json-lines")["id"], path)
    assert {"name": "age", "dtype": "object", "mixed": True} in version["columns"]
    config = {"key_columns": ["id"], "max_examples": 3}
    report = admin._call("POST", f"/dataset/version/{version['id']}/quality", json=config)
    done = wait_done(admin, f"/dataset/quality/{report['id']}")
    assert done["status"] == "SUCCEEDED", done["message"]
    expected = check(pd.read_csv(csv_path, dtype=str), QualityConfig(**config))
    result = done["result"]
    assert result["column_types"] == expected["column_types"]
    assert result["type_consistency"]["age"]["examples"] == [{"row": 5, "value": "abc"}]
    assert result["completeness"]["missing_per_column"] == expected["completeness"]["missing_per_column"]
    assert result["anomalies"]["outlier_rows"] == expected["anomalies"]["outlier_rows"]
    assert (result["scores"], done["score"]) == (expected["scores"], expected["score"])
    profile = admin.dataset_profile(version["id"])
    age = next(c for c in profile["column_profiles"] if c["name"] == "age")
    assert (age["missing"], {t["value"] for t in age["top_values"]} >= {"abc", "500"}) == (1, True)


def pipeline_frame() -> pd.DataFrame:
    train, _ = breast_cancer_split()
    frame = train[["mean radius", "mean texture", "mean smoothness", "worst area", TARGET]].copy()
    frame["texture band"] = np.where(frame["mean texture"] > frame["mean texture"].median(), "rough", "smooth")
    frame.iloc[::9, 0] = np.nan
    frame.iloc[::13, frame.columns.get_loc("texture band")] = None
    return frame.reset_index(drop=True)


STEPS = [
    {"op": "impute", "strategy": "median"},
    {"op": "impute", "strategy": "most_frequent", "columns": ["texture band"]},
    {"op": "outliers", "method": "iqr", "action": "clip"},
    {"op": "scale", "method": "standard"},
    {"op": "encode", "method": "onehot"},
]


def test_pipeline_job_then_train_and_serve_raw_rows(admin: Client, platform_settings: Settings, tmp_path: Path) -> None:
    frame = pipeline_frame()
    path = tmp_path / "cells.csv"
    frame.to_csv(path, index=False)
    dataset = admin.create_dataset("pipeline-job")
    source = admin.upload(dataset["id"], path)
    admin._call("PUT", f"/dataset/{dataset['id']}/features", json={"target": TARGET, "categorical": ["texture band"]})

    # A step that does not fit the data fails the run with the reason, and leaves no version or state behind.
    store = open_store(platform_settings)
    states_before = sorted(store.list(blobs.STATE_PREFIX))
    bad_steps = {"steps": [{"op": "scale", "columns": ["nope"]}]}
    bad = admin._call("POST", f"/dataset/version/{source['id']}/pipeline", json=bad_steps)
    failed = wait_done(admin, f"/dataset/pipeline/{bad['id']}")
    assert failed["status"] == "FAILED" and "nope" in failed["message"]
    assert sorted(store.list(blobs.STATE_PREFIX)) == states_before

    run = admin._call("POST", f"/dataset/version/{source['id']}/pipeline", json={"steps": STEPS})
    done = wait_done(admin, f"/dataset/pipeline/{run['id']}")
    assert done["status"] == "SUCCEEDED", done["message"]
    made = admin.get_dataset_version(done["output_version_id"])
    assert (made["parent_id"], made["format"], made["pipeline"]["steps"]) == (source["id"], "parquet", STEPS)

    reference_state, reference = fit_transform(
        STEPS, pd.read_csv(path), {"target": TARGET, "categorical": ["texture band"]}
    )
    state = json.loads(store.get_bytes(made["state_key"]))
    # Ray Data reads the file as several blocks: order statistics and categories are exact, merged sums agree to
    # the last bits.
    assert_state_equal(state, json.loads(json.dumps(reference_state)))
    produced = pd.read_parquet(io.BytesIO(store.get_bytes(blobs.blob_key(made["sha256"]))))
    pd.testing.assert_frame_equal(produced, reference.reset_index(drop=True), check_dtype=False, atol=1e-12, rtol=0)
    assert {"texture band_rough", "texture band_smooth"} <= set(produced.columns)

    job = admin.create_job(dataset_version_id=made["id"], target_column=TARGET, epochs=3, num_workers=1)
    job = admin.wait_job(job["id"], timeout_s=300)
    assert job["status"] == "SUCCEEDED", job["message"]
    model_version = admin.get_model_version(job["model_version_id"])
    signature = model_version["signature"]
    assert signature["pipeline_state_key"] == made["state_key"]
    assert signature["inputs"] == [c for c in frame.columns if c != TARGET]

    deployment = admin.wait_deployment(admin.deploy(model_version["id"])["id"], timeout_s=240)
    assert deployment["status"] == "RUNNING", deployment["message"]
    try:
        raw = frame.drop(columns=[TARGET]).head(25)
        rows = json.loads(raw.to_json(orient="records"))  # raw values: text categories, nulls
        served = admin.predict(deployment["id"], rows)
        model, spec = load_artifact(store, model_version["artifact_key"])
        offline = predict(model, spec, transform(state, raw, serving=True))
        assert served["labels"] == offline["labels"]
        np.testing.assert_allclose(served["probabilities"], offline["probabilities"], rtol=1e-5, atol=1e-6)
    finally:
        admin.delete_deployment(deployment["id"])
