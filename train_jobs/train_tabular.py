"""Ray job entrypoint: trains the tabular MLP template with Ray Train TorchTrainer (DDP over CPU/GPU workers).

Run by the platform's scheduler as `python -m train_jobs.train_tabular JOB_ID` with the platform's settings in
the environment. Per-epoch metrics reach the database as they are reported (a Train callback on the controller);
checkpoints go to the platform's storage every `checkpoint_interval` epochs; a worker that dies resumes from the
latest one (FailureConfig), and so does a retried job (same run name and storage path). On success the best
checkpoint by the job's metric becomes a DRAFT model version with its lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import ray
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, Result, RunConfig, ScalingConfig
from sqlalchemy.orm import Session

from app.contracts.train_config import TrainConfig, parse
from app.core.config import Settings
from app.db.models import DatasetVersion, TrainingJob
from app.runs.kinds import TRAINING_JOB
from app.services.data import datasets, pipelines
from app.services.models import registry
from app.services.training import job_metrics, jobs, placement
from app.storage import checkpoint_storage, open_store
from train_jobs import runtime
from train_jobs.artifacts import load_artifact, save_artifact
from train_jobs.callbacks import MetricsRecorder
from train_jobs.driver import Entrypoint, Record, run_main
from train_jobs.tabular_loop import SEED, train_loop_per_worker
from train_jobs.templates.tabular_mlp import TabularSpec, build_model, encode_features, encode_labels, fit_spec
from train_jobs.trainer import PlatformTorchTrainer

VALIDATION_FRACTION = 0.2
MAX_FAILURES = 2


def split(frame: Any, config: TrainConfig) -> tuple[Any, Any]:
    """Seeded train/validation split, stratified by class for classification (the same rows on every retry)."""
    rng = np.random.default_rng(SEED)
    if config.task == "classification":
        groups = frame.groupby(config.target_column, sort=True).indices.values()
    else:
        groups = [np.arange(len(frame))]
    held_out = np.zeros(len(frame), dtype=bool)
    for rows in groups:
        shuffled = rng.permutation(rows)
        held_out[shuffled[: max(1, round(len(rows) * VALIDATION_FRACTION))] if len(rows) > 1 else []] = True
    return frame[~held_out], frame[held_out]


def prepare_data(frame: Any, config: TrainConfig) -> tuple[TabularSpec, tuple[np.ndarray, ...]]:
    train_frame, val_frame = split(frame, config)
    spec = fit_spec(train_frame, config.target_column, hidden_units=config.hidden_units, task=config.task)
    arrays = (
        encode_features(spec, train_frame),
        encode_labels(spec, train_frame[spec.target_column]),
        encode_features(spec, val_frame),
        encode_labels(spec, val_frame[spec.target_column]),
    )
    return spec, arrays


def run_config(settings: Settings, job_id: int, config: TrainConfig, callbacks: list[Any]) -> RunConfig:
    storage_path, filesystem = checkpoint_storage(settings)
    return RunConfig(
        name=jobs.run_name(job_id),  # the same name on retry: Ray Train resumes from its latest checkpoint
        storage_path=storage_path,
        storage_filesystem=filesystem,
        checkpoint_config=CheckpointConfig(
            num_to_keep=2, checkpoint_score_attribute=config.metric, checkpoint_score_order=config.mode
        ),
        failure_config=FailureConfig(max_failures=MAX_FAILURES),
        callbacks=callbacks,
    )


def fit(
    settings: Settings, job_id: int, config: TrainConfig, loop: Callable[[dict[str, Any]], None], loop_config: dict
) -> tuple[Result, tuple[Checkpoint, dict[str, Any]] | None]:
    """Runs `loop` under TorchTrainer DDP with the job's resources, storage, retries and metric recording; returns
    the result and its best checkpoint by the job's metric (None when no checkpoint carries the metric)."""
    trainer = PlatformTorchTrainer(
        loop,
        train_loop_config={"config": config.model_dump(), "job_id": job_id, **loop_config},
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=config.gpus_per_worker > 0,
            resources_per_worker=config.worker_resources(),
            label_selector=placement.job_label_selector(settings, job_id),  # the scheduler's preferred nodes
        ),
        run_config=run_config(settings, job_id, config, [MetricsRecorder(job_id, settings.database_url)]),
    )
    result = trainer.fit()
    sign = 1 if config.mode == "max" else -1
    scored = [(c, m) for c, m in result.best_checkpoints if config.metric in m]
    return result, max(scored, key=lambda cm: sign * cm[1][config.metric]) if scored else None


def load(settings: Settings, session: Session, job: TrainingJob) -> tuple[TrainConfig, Any]:
    """The job's config and its data (a frame)."""
    version = session.get_one(DatasetVersion, job.dataset_version_id)
    return parse(job.config), datasets.load_frame(open_store(settings), version)


def work(settings: Settings, job_id: int, loaded: tuple[TrainConfig, Any]) -> Record:
    config, frame = loaded
    store = open_store(settings)
    spec, arrays = prepare_data(frame, config)
    _, best = fit(
        settings,
        job_id,
        config,
        train_loop_per_worker,
        {"spec": spec.to_dict(), "arrays": ray.put(arrays)},
    )
    if best is None:
        raise RuntimeError("Training reported no checkpoint.")
    checkpoint, best_metrics = best
    state = runtime.load_checkpoint(checkpoint)
    model = build_model(spec)
    model.load_state_dict(state["model"])
    artifact_prefix = jobs.artifact_prefix(job_id)
    save_artifact(store, artifact_prefix, model, spec)
    load_artifact(store, artifact_prefix)  # fail here, not at deploy time, if the artifact is unreadable

    return model_version(
        artifact_key=artifact_prefix,
        checkpoint_path=checkpoint.path,
        best_metrics=best_metrics,
        signature=lambda session, job: {
            "inputs": spec.feature_columns,
            "target": spec.target_column,
            "classes": spec.classes,
            "task": spec.task,
            **pipelines.serving_signature(
                session, store, version_id=job.dataset_version_id, model_inputs=spec.feature_columns
            ),
        },
    )


def model_version(
    *,
    artifact_key: str,
    checkpoint_path: str,
    best_metrics: dict[str, Any],
    signature: Callable[[Session, TrainingJob], dict[str, Any]],
    lineage: dict[str, Any] | None = None,
) -> Record:
    """Records the job's DRAFT model version (metrics and lineage), in the transaction that marks it SUCCEEDED."""

    def record(session: Session, job: TrainingJob) -> None:
        history = job_metrics.metric_history(session, job.id)
        registry.register_version(
            session,
            job=job,
            artifact_key=artifact_key,
            signature=signature(session, job),
            metrics=numbers(best_metrics),
            lineage={
                "final_metrics": numbers(history[-1]) if history else {},
                "best_metrics": numbers(best_metrics),
                "checkpoint": checkpoint_path,
                **(lineage or {}),
            },
        )

    return record


def numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


ENTRYPOINT = Entrypoint(TRAINING_JOB, load, work, workers_mark_running=True)

if __name__ == "__main__":
    run_main(ENTRYPOINT)
