"""Entrypoint of a training job's Ray job: `python -m train_jobs.launch DRIVER_MODULE JOB_ID WORKER_PLAN_JSON`.

Connects to Ray, gets the job's Train workers from the scheduler's plan (warm ones from the platform's pool, else
fresh ones: `train_jobs.prestart`), and only then imports the template's driver module and runs its `ENTRYPOINT`
(train_jobs.driver), as that module's own `__main__` does. The driver modules still run alone (`python -m
train_jobs.train_tabular JOB_ID`, as a KubeRay RayJob does); they then start their workers when Train asks for them.
"""

from __future__ import annotations

import importlib
import sys

import ray

from app.contracts.train_config import WorkerPlan
from train_jobs import prestart


def main(argv: list[str]) -> int:
    module, job_id, plan = argv
    ray.init()  # inside a Ray job this joins the job's cluster
    try:
        prestart.start(WorkerPlan.from_json(plan))
    except Exception as e:  # only a head start: without it the driver's worker group starts its workers itself
        print(f"Workers not started ahead ({type(e).__name__}: {e}); the driver starts them.", flush=True)
    # Imported only now: the driver module imports torch and Ray Train, which the workers' start need not wait for.
    return importlib.import_module(module).ENTRYPOINT.main([job_id])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
