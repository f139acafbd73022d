"""Ray job entrypoint of a custom-code job: the user's `train_loop_per_worker` under the platform's TorchTrainer.

Run as `python -m train_jobs.train_custom JOB_ID`. Same scaling, storage, checkpoints, FailureConfig, metric
recording and retry as the templates; the best checkpoint (by the job's metric, else the latest) is registered as a
DRAFT model version whose artifact is that checkpoint's state file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from sqlalchemy.orm import Session

from app.contracts.templates import CUSTOM_TEMPLATE
from app.contracts.train_config import TrainConfig, parse
from app.core.config import Settings
from app.db.models import DatasetVersion, TrainingJob
from app.runs.kinds import TRAINING_JOB
from app.services.data import datasets
from app.services.training import custom_code, jobs
from app.storage import open_store
from train_jobs import custom_loop, runtime, sandbox
from train_jobs.driver import Entrypoint, Record, run_main
from train_jobs.train_tabular import fit, model_version

Loaded = tuple[TrainConfig, str, Any]


def load(settings: Settings, session: Session, job: TrainingJob) -> Loaded:
    """The job's config, the key of its code, and its data (a frame)."""
    store = open_store(settings)
    code_key = custom_code.find(store, job.code_hash or "")
    frame = datasets.load_frame(store, session.get_one(DatasetVersion, job.dataset_version_id))
    return parse(job.config), code_key, frame


def work(settings: Settings, job_id: int, loaded: Loaded) -> Record:
    config, code_key, frame = loaded
    store = open_store(settings)
    result, best = fit(
        settings,
        job_id,
        config,
        custom_loop.train_loop_per_worker,
        {
            "code": store.get_bytes(code_key),
            "file_name": code_key.rsplit("/", 1)[-1],
            "frame": ray.put(frame),
            "limits": sandbox.Limits.for_job(
                cpus_per_worker=config.cpus_per_worker,
                memory_per_worker_mb=config.memory_per_worker_mb,
                max_hours=settings.custom_code_max_hours,
            ).to_dict(),
        },
    )
    if best is not None:
        checkpoint, best_metrics = best
    elif result.checkpoint is not None:
        checkpoint, best_metrics = result.checkpoint, dict(result.metrics or {})
    else:
        raise RuntimeError("The training code reported no checkpoint: call train_jobs.runtime.report(metrics, state).")
    with checkpoint.as_directory() as d:
        state_bytes = (Path(d) / runtime.CHECKPOINT_FILE).read_bytes()
    artifact_prefix = jobs.artifact_prefix(job_id)
    store.put_bytes(f"{artifact_prefix}/{runtime.CHECKPOINT_FILE}", state_bytes)

    inputs = [str(c) for c in frame.columns if c != config.target_column]
    return model_version(
        artifact_key=artifact_prefix,
        checkpoint_path=checkpoint.path,
        best_metrics=best_metrics,
        signature=lambda _session, _job: {
            "inputs": inputs,
            "target": config.target_column,
            "classes": [],
            "task": CUSTOM_TEMPLATE,
        },
        lineage={"code_key": code_key},
    )


# The workers run the user's code without database access (train_jobs.sandbox): the driver marks the job RUNNING.
ENTRYPOINT = Entrypoint(TRAINING_JOB, load, work)

if __name__ == "__main__":
    run_main(ENTRYPOINT)
