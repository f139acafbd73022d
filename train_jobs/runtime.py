"""Helpers every training loop of the platform uses inside Ray Train workers: checkpoints and status.

A loop saves its state with `report(metrics, state)` (rank 0 writes the checkpoint, every rank reports, as Ray Train
requires) and reads it back with `restore()` after a worker failure or a retry.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil
import ray.train
import torch
from ray.train import Checkpoint
from torch import nn

CHECKPOINT_FILE = "state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP (with one worker `prepare_model` does not wrap)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def mark_running(job_id: int | None) -> None:
    """Rank 0 moves the job from STARTING to RUNNING once its workers run the loop.

    In a background thread: importing the database layer must not delay the first training step.
    """
    if job_id is None or ray.train.get_context().get_world_rank() != 0:
        return

    def write() -> None:
        from app.core.config import get_settings  # workers inherit the platform's settings from Ray's environment
        from app.db.session import session_scope
        from app.services import training

        with session_scope(get_settings().database_url) as session:
            training.mark_running(session, job_id)

    threading.Thread(target=write, name="mark-running", daemon=True).start()


def usage() -> dict[str, float]:
    """This worker's resource use since its previous report (`sys_*` keys; the recorder sums them over workers)."""
    process = psutil.Process()
    sample = {
        "sys_cpu_percent": process.cpu_percent(interval=None),  # since the previous call in this process
        "sys_rss_mb": process.memory_info().rss / 2**20,
    }
    if torch.cuda.is_available():
        sample["sys_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        try:
            sample["sys_gpu_utilization"] = float(torch.cuda.utilization())
        except Exception:  # needs NVML (pynvml); memory is still sampled
            pass
    return sample


def report(metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
    """Reports `metrics` (plus this worker's resource use) from every rank; with `state`, rank 0 also stores it as
    a checkpoint."""
    metrics = {**metrics, **usage()}
    if state is None or ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / CHECKPOINT_FILE)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))


def restore() -> dict[str, Any] | None:
    """The state of the latest checkpoint (after a worker failure or a retry), or None on a fresh start."""
    checkpoint = ray.train.get_checkpoint()
    return load_checkpoint(checkpoint) if checkpoint else None


def load_checkpoint(checkpoint: Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / CHECKPOINT_FILE, weights_only=True)
