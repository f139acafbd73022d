"""Ray job entrypoint: trains the image CNN template on an image zip with Ray Train TorchTrainer (DDP).

Run as `python -m train_jobs.train_image JOB_ID`. The driver decodes the zip from the platform's storage once,
resizes every image, splits train/validation (seeded, stratified by class), fits the normalisation on the training
images and hands uint8 arrays to the workers through the object store. The TorchTrainer set-up (resources, storage,
checkpoints, FailureConfig, metric recording, retry) and failure recording are the tabular template's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from sqlalchemy.orm import Session

from app.contracts.image_cnn import IMAGE_TASK, check_classes
from app.contracts.train_config import ImageOptions, TrainConfig, parse
from app.core.config import Settings
from app.db.models import DatasetVersion, TrainingJob
from app.runs.kinds import TRAINING_JOB
from app.services.data import datasets
from app.services.training import jobs
from app.storage import open_store
from train_jobs import image_loop, runtime
from train_jobs.artifacts import save_artifact
from train_jobs.driver import Entrypoint, Record, run_main
from train_jobs.templates.image_cnn import (
    ImageSpec,
    build_model,
    fit_spec,
    load_artifact,
    read_zip,
)
from train_jobs.train_tabular import fit, model_version, split


def prepare_data(
    images: np.ndarray, labels: list[str], config: TrainConfig
) -> tuple[ImageSpec, tuple[np.ndarray, ...]]:
    """The spec (classes, normalisation of the training images) and (x_train, y_train, x_val, y_val)."""
    classes = check_classes(labels)
    index = {c: i for i, c in enumerate(classes)}
    targets = np.array([index[label] for label in labels], dtype=np.int64)
    train_rows, val_rows = (
        part.index.to_numpy() for part in split(pd.DataFrame({config.target_column: labels}), config)
    )
    spec = fit_spec(images[train_rows], classes, config.image or ImageOptions(), hidden_units=config.hidden_units)
    return spec, (images[train_rows], targets[train_rows], images[val_rows], targets[val_rows])


Loaded = tuple[TrainConfig, np.ndarray, list[str]]


def load(settings: Settings, session: Session, job: TrainingJob) -> Loaded:
    """The job's config and its images (decoded and resized) with their labels."""
    config = parse(job.config)
    version = session.get_one(DatasetVersion, job.dataset_version_id)
    with tempfile.TemporaryDirectory(prefix="aip-images-") as tmp:
        path = datasets.download_to(open_store(settings), version, Path(tmp) / "images.zip")
        images, labels = read_zip(path, (config.image or ImageOptions()).size)
    return config, images, labels


def work(settings: Settings, job_id: int, loaded: Loaded) -> Record:
    config, images, labels = loaded
    store = open_store(settings)
    spec, arrays = prepare_data(images, labels, config)
    print(
        f"{len(labels)} images, {len(spec.classes)} classes, {spec.channels} channel(s) at {spec.size}x{spec.size}; "
        f"{len(arrays[0])} for training, {len(arrays[2])} for validation.",
        flush=True,
    )
    _, best = fit(
        settings,
        job_id,
        config,
        image_loop.train_loop_per_worker,
        {"spec": spec.to_dict(), "arrays": ray.put(arrays)},
    )
    if best is None:
        raise RuntimeError("Training reported no checkpoint.")
    checkpoint, best_metrics = best
    model = build_model(spec)
    model.load_state_dict(runtime.load_checkpoint(checkpoint)["model"])
    artifact_prefix = jobs.artifact_prefix(job_id)
    save_artifact(store, artifact_prefix, model, spec)  # type: ignore[arg-type]  # same layout: weights + spec JSON
    load_artifact(store, artifact_prefix)  # fail here, not at deploy time, if the artifact is unreadable

    return model_version(
        artifact_key=artifact_prefix,
        checkpoint_path=checkpoint.path,
        best_metrics=best_metrics,
        signature=lambda _session, _job: {
            "inputs": ["image"],
            "target": config.target_column,
            "classes": spec.classes,
            "task": IMAGE_TASK,
            "image_size": spec.size,
            "channels": spec.channels,
        },
        lineage={
            "classes": spec.classes,
            "image_size": spec.size,
            "channels": spec.channels,
            "normalisation": {"means": spec.means, "stds": spec.stds},
            "augmentation": (config.image or ImageOptions()).augmentation.model_dump(),
        },
    )


ENTRYPOINT = Entrypoint(TRAINING_JOB, load, work, workers_mark_running=True)

if __name__ == "__main__":
    run_main(ENTRYPOINT)
