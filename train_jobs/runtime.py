"""Helpers every training loop of the platform uses inside Ray Train workers: checkpoints and status.

A loop saves its state with `report(metrics, state)` (rank 0 writes the checkpoint, every rank reports, as Ray Train
requires) and reads it back with `restore()` after a worker failure or a retry.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import ray.train
import torch
from ray.train import Checkpoint
from torch import nn

from train_jobs.callbacks import STEPS_KEY

CHECKPOINT_FILE = "state.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP (with one worker `prepare_model` does not wrap)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# The database layer's import (about half a second of CPU per worker) would compete for the interpreter with the
# loop's own first steps (DDP's set-up alone imports torch's compiler stack): the background writes (status, usage,
# training steps) wait for the first report, or a few seconds when the first epoch is long, so a long first epoch
# still shows samples; the status write goes first.
_first_report = threading.Event()
_status_written = threading.Event()  # rank 0's RUNNING write is done (other ranks have none): it goes first
FIRST_STEPS_GRACE_S = 3.0


def _after_first_steps() -> None:
    _first_report.wait(FIRST_STEPS_GRACE_S)
    _status_written.wait()


STEP_FLUSH_S = 1.0  # logged training steps reach the database about this often


class _StepLog:
    """Rank 0's logged training steps, written to the database in a background thread about every second (after
    the first report, as the other background writes are), so a long epoch shows its curve as it trains. Steps not
    yet written when the loop reports leave with the report (the driver records them with the epoch's metrics): a
    checkpoint never gets ahead of the steps before it, so a resumed run's steps continue where the log stopped."""

    def __init__(self, job_id: int, *, write: bool = True) -> None:
        self.job_id = job_id
        self.pending: list[dict[str, float]] = []
        self.pending_lock = threading.Lock()  # held briefly, by the loop too
        self.write_lock = threading.Lock()  # held while a batch is on its way to the database
        self.closed = threading.Event()
        # Without a writer (custom code: no database in the worker), every step leaves with the next report.
        self.thread = threading.Thread(target=self._write, name="step-log", daemon=True) if write else None
        if self.thread is not None:
            self.thread.start()

    def add(self, step: dict[str, float]) -> None:
        with self.pending_lock:
            self.pending.append(step)

    def take_unwritten(self) -> list[dict[str, float]]:
        """The steps not written (waits for a write under way, so each step is written once)."""
        with self.write_lock, self.pending_lock:
            steps, self.pending = self.pending, []
        return steps

    def close(self) -> None:
        """Writes what is pending and stops (the loop ended)."""
        self.closed.set()
        if self.thread is not None:
            self.thread.join(timeout=30)

    def _write(self) -> None:
        _after_first_steps()
        from app.core.config import get_settings
        from app.db.session import session_scope
        from app.services.training import job_metrics

        url = get_settings().database_url
        while True:
            last = self.closed.wait(STEP_FLUSH_S)
            with self.write_lock:
                with self.pending_lock:
                    steps, self.pending = self.pending, []
                if steps:
                    try:
                        with session_scope(url) as session:
                            job_metrics.record_training_steps(session, job_id=self.job_id, steps=steps)
                    except Exception as e:  # the database is briefly unreachable: these steps are not shown
                        print(f"{len(steps)} training steps not recorded: {e}", flush=True)
            if last:
                return


_step_log: _StepLog | None = None


def log_step(step: dict[str, float]) -> None:
    """Records one training step ({"step", "epoch", "loss", ...}) of a job's rank 0; elsewhere (other ranks, tuning
    trials) it does nothing."""
    if _step_log is not None:
        _step_log.add(step)


def close_step_log() -> None:
    global _step_log
    if _step_log is not None:
        _step_log.close()
        _step_log = None


def mark_running(job_id: int | None, *, through_driver: bool = False) -> None:
    """Rank 0 moves the job from STARTING to RUNNING once its workers run the loop and logs its training steps;
    every rank samples its resource use. In background threads, after the loop's first steps.

    `through_driver`: the worker holds no database access (custom code, train_jobs.sandbox): the driver marks the
    job RUNNING, and steps and resource use reach it only with the reports."""
    global _step_log
    if job_id is None:
        return
    if through_driver:
        _status_written.set()
        if ray.train.get_context().get_world_rank() == 0:
            _step_log = _StepLog(job_id, write=False)
        return
    rank = ray.train.get_context().get_world_rank()
    threading.Thread(target=_sample_usage, args=(job_id, rank), name="usage-sampler", daemon=True).start()
    if rank != 0:
        _status_written.set()
        return
    _step_log = _StepLog(job_id)

    def write() -> None:
        _first_report.wait(FIRST_STEPS_GRACE_S)
        from app.core.config import get_settings  # workers inherit the platform's settings from Ray's environment
        from app.db.session import session_scope
        from app.runs import lifecycle
        from app.runs.kinds import TRAINING_JOB

        try:
            with session_scope(get_settings().database_url) as session:
                lifecycle.mark_running(session, TRAINING_JOB, job_id)
        finally:
            _status_written.set()

    threading.Thread(target=write, name="mark-running", daemon=True).start()


def _sample_usage(job_id: int, rank: int) -> None:
    """Writes this worker's resource use every `metrics.usage_sample_s` seconds while the job runs: a timer, not
    the epoch, so a long epoch still shows samples. One small row per worker and interval keeps it cheap."""
    _after_first_steps()
    from app.core.config import get_settings
    from app.db.session import session_scope
    from app.services.system import sysconfig
    from app.services.training import job_metrics

    settings = get_settings()
    with session_scope(settings.database_url) as session:
        interval = float(sysconfig.get(session, settings, "metrics.usage_sample_s"))
    process = psutil.Process()
    process.cpu_percent(interval=None)  # the baseline: each later call measures since the previous one
    recording = True
    while recording:
        time.sleep(interval)
        try:
            with session_scope(settings.database_url) as session:
                recording = job_metrics.record_usage(session, job_id=job_id, rank=rank, values=usage(process))
        except Exception as e:  # the database is briefly unreachable: try again next time
            print(f"Resource sample not recorded: {e}", flush=True)


@functools.cache
def _this_process() -> psutil.Process:
    # One object per process: psutil measures CPU use between calls on the same object.
    return psutil.Process()


def usage(process: psutil.Process | None = None) -> dict[str, float]:
    """This worker's resource use since the previous call on `process` (`sys_*` keys; the recorder sums them
    over workers)."""
    process = process or _this_process()
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
    if _step_log is not None and (steps := _step_log.take_unwritten()):
        metrics[STEPS_KEY] = steps
    if state is None or ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
    else:
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / CHECKPOINT_FILE)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))
    _first_report.set()


def restore() -> dict[str, Any] | None:
    """The state of the latest checkpoint (after a worker failure or a retry), or None on a fresh start."""
    checkpoint = ray.train.get_checkpoint()
    return load_checkpoint(checkpoint) if checkpoint else None


def load_checkpoint(checkpoint: Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / CHECKPOINT_FILE, weights_only=True)
