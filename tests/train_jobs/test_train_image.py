"""The image CNN template on the real platform: a DDP job on a synthetic image zip (coloured shapes) that learns,
reports per-epoch metrics, registers a model version with its lineage and serves base64 images once deployed; bad
templates, image options and prediction rows are refused with a 422 and create nothing."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.client import ApiError, Client
from app.core.config import Settings
from app.services.training import jobs
from app.storage import open_store
from tests.utils.images import shapes_zip
from train_jobs.templates.image_cnn import load_artifact, predict, read_zip

pytestmark = pytest.mark.ray

EPOCHS = 4
AUGMENTATION = {"horizontal_flip": 0.5, "vertical_flip": 0.2, "crop_size": 16, "crop_padding": 2, "noise_std": 0.1}


@pytest.fixture(scope="module")
def image_version(admin: Client, tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = shapes_zip(tmp_path_factory.mktemp("images") / "shapes.zip", per_class=30, size=16, seed=0)
    return admin.upload(admin.create_dataset("image-shapes")["id"], path)


def expect_422(client: Client, match: str, **spec: object) -> None:
    before = len(client.list_jobs())
    with pytest.raises(ApiError) as err:
        client.create_job(**spec)
    assert err.value.status == 422, err.value.body
    assert match.lower() in str(err.value).lower(), err.value.body
    assert len(client.list_jobs()) == before


def test_image_job_learns_and_registers_a_model_with_lineage(
    admin: Client, image_version: dict, platform_settings: Settings, tmp_path: Path
) -> None:
    assert image_version["format"] == "images"
    job = admin.create_job(
        dataset_version_id=image_version["id"],
        template="image_cnn",
        target_column="label",
        epochs=EPOCHS,
        batch_size=16,
        learning_rate=0.005,
        num_workers=2,
        image={"size": 16, "conv_channels": 8, "augmentation": AUGMENTATION},
    )
    assert job["status"] == "QUEUED"
    assert job["config"]["image"]["augmentation"] == AUGMENTATION

    done = admin.wait_job(job["id"], timeout_s=400)
    assert done["status"] == "SUCCEEDED", done["message"] + admin.job_logs(job["id"])[-3000:]
    assert [m["step"] for m in done["metrics"]] == list(range(1, EPOCHS + 1))
    assert {"loss", "val_loss", "val_accuracy"} <= done["metrics"][-1].keys()
    assert max(m["val_accuracy"] for m in done["metrics"]) > 0.6  # three classes: chance is 1/3
    logs = admin.job_logs(job["id"])
    assert "90 images, 3 classes, 3 channel(s) at 16x16; 72 for training, 18 for validation." in logs

    version = admin.get_model_version(done["model_version_id"])
    assert version["stage"] == "DRAFT" and version["template"] == "image_cnn"
    assert version["signature"]["classes"] == ["circle", "square", "triangle"]
    assert version["metrics"]["val_accuracy"] == max(m["val_accuracy"] for m in done["metrics"])
    lineage = version["lineage"]
    assert lineage["code_hash"] == jobs.code_hash("image_cnn")
    assert lineage["config"]["image"]["augmentation"] == AUGMENTATION
    assert lineage["augmentation"] == AUGMENTATION
    assert lineage["classes"] == ["circle", "square", "triangle"] and lineage["image_size"] == 16
    assert lineage["dataset_version_id"] == image_version["id"] and lineage["checkpoint"]
    assert lineage["final_metrics"]["val_accuracy"] == done["metrics"][-1]["val_accuracy"]

    # The stored artifact classifies shapes it never saw, offline and through a deployment (base64 PNG rows).
    model, spec = load_artifact(open_store(platform_settings), version["artifact_key"])
    unseen = shapes_zip(tmp_path / "unseen.zip", per_class=10, seed=99)
    images, labels = read_zip(unseen, spec.size)
    offline = predict(model, spec, images)
    assert np.mean(np.array(offline["labels"]) == np.array(labels)) > 0.6
    with zipfile.ZipFile(unseen) as archive:
        rows = [{"image": base64.b64encode(archive.read(name)).decode()} for name in archive.namelist()]
    deployment = admin.wait_deployment(admin.deploy(version["id"])["id"], timeout_s=240)
    assert deployment["status"] == "RUNNING", deployment["message"]
    try:
        served = admin.predict(deployment["id"], rows)
        assert served["classes"] == spec.classes
        assert served["labels"] == offline["labels"]
        np.testing.assert_allclose(served["probabilities"], offline["probabilities"], rtol=1e-5, atol=1e-6)
        for bad_rows, match in [
            ([{"picture": rows[0]["image"]}], "Row 0 needs 'image'"),
            ([rows[0], {"image": "%%%"}], "Row 1: 'image' is not valid base64"),
            ([{"image": base64.b64encode(b"no image").decode()}], "not a readable image"),
        ]:
            with pytest.raises(ApiError) as err:
                admin.predict(deployment["id"], bad_rows)
            assert err.value.status == 422 and match in str(err.value), err.value.body
    finally:
        admin.delete_deployment(deployment["id"])


def test_templates_refuse_the_other_kind_of_data(admin: Client, image_version: dict, tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    pd.DataFrame({"x": range(20), "label": [0, 1] * 10}).to_csv(path, index=False)
    table = admin.upload_csv(admin.create_dataset("image-vs-table")["id"], path)
    on_images = {"dataset_version_id": image_version["id"], "target_column": "label"}
    on_table = {"dataset_version_id": table["id"], "target_column": "label"}
    expect_422(admin, "is an image zip", **on_images, template="tabular_mlp")
    expect_422(admin, "trains on image zips", **on_table, template="image_cnn")
    expect_422(admin, "image: not an option of template 'tabular_mlp'", **on_table, image={})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image": {"augmentation": {"rotate": 15}}}, "rotate"),
        ({"image": {"augmentation": {"horizontal_flip": 1.5}}}, "horizontal_flip"),
        ({"image": {"size": 16, "augmentation": {"crop_size": 40}}}, "larger than the image"),
        ({"image": {"augmentation": {"crop_padding": 4}}}, "needs augmentation.crop_size"),
        ({"target_column": "image"}, "set target_column to 'label'"),
        ({"task": "regression"}, "classification"),
    ],
)
def test_bad_image_jobs_are_refused(admin: Client, image_version: dict, change: dict, match: str) -> None:
    spec = {"dataset_version_id": image_version["id"], "template": "image_cnn", "target_column": "label", **change}
    expect_422(admin, match, **spec)


def test_a_single_class_zip_is_refused(admin: Client, tmp_path: Path) -> None:
    path = shapes_zip(tmp_path / "one.zip", per_class=3, shapes=("circle",))
    version = admin.upload(admin.create_dataset("image-one-class")["id"], path)
    expect_422(admin, "needs 2 to", dataset_version_id=version["id"], template="image_cnn", target_column="label")
