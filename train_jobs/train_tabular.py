"""Ray job entrypoint: trains the tabular MLP template with Ray Train TorchTrainer (DDP over CPU/GPU workers).

Run by the platform as `python -m train_jobs.train_tabular JOB_ID` with the platform's settings in the
environment. Per-epoch metrics reach the database as they are reported (a Train callback on the controller);
on success the best checkpoint becomes a DRAFT model version.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, UserCallback
from ray.train.torch import TorchTrainer, prepare_data_loader, prepare_model
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.core.config import get_settings
from app.db.models import DatasetVersion, JobStatus, TrainingJob
from app.db.session import session_scope
from app.services import datasets, models, training
from app.storage import checkpoint_storage, open_store
from train_jobs.artifacts import load_artifact, save_artifact
from train_jobs.templates.tabular_mlp import TabularSpec, build_model, encode_features, encode_labels, fit_spec

CHECKPOINT_FILE = "model.pt"
VALIDATION_FRACTION = 0.2
SEED = 0


def train_loop_per_worker(config: dict[str, Any]) -> None:
    spec = TabularSpec.from_dict(config["spec"])
    torch.manual_seed(SEED)
    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in ray.get(config["arrays"]))
    loader = prepare_data_loader(
        DataLoader(TensorDataset(x_train, y_train), batch_size=config["batch_size"], shuffle=True)
    )
    model = prepare_model(build_model(spec))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    loss_fn = nn.CrossEntropyLoss()

    start_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:  # resumed after a failure: continue where the last checkpoint left off
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / CHECKPOINT_FILE, weights_only=True)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"]

    for epoch in range(start_epoch, config["epochs"]):
        if ray.train.get_context().get_world_size() > 1:
            loader.sampler.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            count += len(y)
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = loss_fn(logits, y_val).item()
            val_accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        metrics = {
            "epoch": epoch + 1,
            "loss": total / max(count, 1),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        with tempfile.TemporaryDirectory() as d:
            ckpt = None
            if ray.train.get_context().get_world_rank() == 0:
                state = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}
                torch.save(state, Path(d) / CHECKPOINT_FILE)
                ckpt = Checkpoint.from_directory(d)
            ray.train.report(metrics, checkpoint=ckpt)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class MetricsRecorder(UserCallback):
    """Runs on the Train controller: stores each epoch's metrics (averaged over workers) as they arrive."""

    def __init__(self, job_id: int, database_url: str) -> None:
        self.job_id = job_id
        self.database_url = database_url

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Checkpoint | None) -> None:
        step = int(metrics[0]["epoch"])
        keys = [k for k in metrics[0] if k != "epoch" and isinstance(metrics[0][k], int | float)]
        averaged = {k: float(np.mean([m[k] for m in metrics])) for k in keys}
        with session_scope(self.database_url) as session:
            training.record_metrics(session, job_id=self.job_id, step=step, metrics=averaged)


def run(job_id: int) -> None:
    settings = get_settings()
    store = open_store(settings)
    ray.init()  # inside a Ray job this joins the job's cluster
    with session_scope(settings.database_url) as session:
        job = training.mark_running(session, job_id)
        config = dict(job.config)
        frame = datasets.load_frame(store, session.get_one(DatasetVersion, job.dataset_version_id))

    target = frame[config["target_column"]]
    stratify = target if target.value_counts().min() >= 2 else None
    train_frame, val_frame = train_test_split(
        frame, test_size=VALIDATION_FRACTION, random_state=SEED, stratify=stratify
    )
    spec = fit_spec(train_frame, config["target_column"])
    arrays = ray.put(
        (
            encode_features(spec, train_frame),
            encode_labels(spec, train_frame[spec.target_column]),
            encode_features(spec, val_frame),
            encode_labels(spec, val_frame[spec.target_column]),
        )
    )
    storage_path, filesystem = checkpoint_storage(settings)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "spec": spec.to_dict(),
            "arrays": arrays,
            "epochs": config["epochs"],
            "batch_size": config["batch_size"],
            "learning_rate": config["learning_rate"],
        },
        scaling_config=ScalingConfig(num_workers=config["num_workers"], use_gpu=False),
        run_config=RunConfig(
            name=f"job-{job_id}",
            storage_path=storage_path,
            storage_filesystem=filesystem,
            checkpoint_config=CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute="val_accuracy", checkpoint_score_order="max"
            ),
            failure_config=FailureConfig(max_failures=2),
            callbacks=[MetricsRecorder(job_id, settings.database_url)],
        ),
    )
    result = trainer.fit()
    best = max(result.best_checkpoints, key=lambda cm: cm[1]["val_accuracy"]) if result.best_checkpoints else None
    if best is None:
        raise RuntimeError("Training reported no checkpoint.")
    checkpoint, best_metrics = best
    with checkpoint.as_directory() as d:
        state = torch.load(Path(d) / CHECKPOINT_FILE, weights_only=True)
    model = build_model(spec)
    model.load_state_dict(state["model"])
    artifact_prefix = f"models/job-{job_id}"
    save_artifact(store, artifact_prefix, model, spec)
    load_artifact(store, artifact_prefix)  # fail here, not at deploy time, if the artifact is unreadable

    with session_scope(settings.database_url) as session:
        job = session.get_one(TrainingJob, job_id)
        if job.status != JobStatus.RUNNING:
            return  # stopped meanwhile: keep the user's decision
        models.register_version(
            session,
            job=job,
            artifact_key=artifact_prefix,
            signature={"inputs": spec.feature_columns, "target": spec.target_column, "classes": spec.classes},
            metrics={k: float(v) for k, v in best_metrics.items() if isinstance(v, int | float)},
        )
        training.finish(session, job, JobStatus.SUCCEEDED)


def main(argv: list[str]) -> int:
    job_id = int(argv[0])
    settings = get_settings()
    try:
        run(job_id)
    except Exception as e:
        with session_scope(settings.database_url) as session:
            job = session.get(TrainingJob, job_id)
            if job is not None and not JobStatus(job.status).is_terminal:
                training.finish(session, job, JobStatus.FAILED, f"{type(e).__name__}: {e}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
