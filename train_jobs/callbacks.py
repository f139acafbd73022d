"""Ray Train callbacks of the platform, run on the Train controller (a job's driver).

Every Train worker also unpickles them (they travel in the run's config) before its loop can start, so this module
imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from ray.train import UserCallback

STEPS_KEY = "training_steps"  # in a report's metrics: rank 0's logged steps not yet written (train_jobs.runtime)


class MetricsRecorder(UserCallback):
    """Stores each report's metrics in the database as they arrive, keyed by epoch: averaged over workers, except
    resource use (`sys_*`), which is summed into the job's total; and the training steps rank 0 sent with it. The
    first one also marks the job RUNNING, if rank 0 has not yet."""

    def __init__(self, job_id: int, database_url: str) -> None:
        self.job_id = job_id
        self.database_url = database_url

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        from app.db.session import session_scope
        from app.runs import lifecycle
        from app.runs.kinds import TRAINING_JOB
        from app.services.training import job_metrics

        step = int(metrics[0]["epoch"])
        keys = [k for k, v in metrics[0].items() if k != "epoch" and isinstance(v, int | float)]
        averaged = {
            k: sum(float(m.get(k, 0.0)) for m in metrics) / (1 if k.startswith("sys_") else len(metrics)) for k in keys
        }
        training_steps = [s for m in metrics for s in m.get(STEPS_KEY, [])]  # rank 0's, not yet written
        with session_scope(self.database_url) as session:
            lifecycle.mark_running(session, TRAINING_JOB, self.job_id)  # no metric of a job still shown as STARTING
            job_metrics.record_metrics(session, job_id=self.job_id, step=step, metrics=averaged)
            if training_steps:
                job_metrics.record_training_steps(session, job_id=self.job_id, steps=training_steps)
